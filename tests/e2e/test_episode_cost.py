"""In a real browser: the clinician's episode page and variance page load their cost lens
(HTMX) and show the DOMAIN.md knee example's figures beside the departures that explain them."""

import pytest
from playwright.sync_api import expect

from tests.conftest import browser_login
from tests.costing.factories import knee_episode

pytestmark = pytest.mark.browser


@pytest.fixture
def knee(transactional_db, org, alice):
    return knee_episode(org, alice)[1]


def test_the_clinician_reads_the_episodes_cost_beside_its_departures(page, live_server, knee):
    browser_login(page, live_server, "alice")
    page.goto(f"{live_server.url}/variances/episodes/{knee.pk}/")

    panel = page.locator("#episode-cost")
    expect(panel.locator(".card").filter(has_text="Variance")).to_contain_text("£1,163.38 U")
    expect(panel.locator(".card").filter(has_text="Expected")).to_contain_text("£4,167.13")
    implant = panel.get_by_role("row").filter(has_text="Knee implant")
    expect(implant).to_contain_text("£200.00 U")

    implant.get_by_role("link", name="Substitution").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Substitution")
    expect(page.locator("#variance-cost")).to_contain_text("This substitution explains £200.00 U")
    expect(page.locator("#variance-cost")).to_contain_text("never charged to the clinician")
