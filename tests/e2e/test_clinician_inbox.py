"""In a real browser: the clinician explains a detected departure from her inbox and sees
the count drop; her clinical lead then reviews it from his queue (HTMX)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import browser_login
from tests.variances.factories import build_pathway, event, reason, start
from variances.detection import evaluate_episode
from variances.models import Variance

pytestmark = pytest.mark.browser


@pytest.fixture
def late_surgery(transactional_db, org, alice, bob):
    reason()  # seed the catalogue: the live server's test database was flushed
    knee = build_pathway(org["ORTHO"])
    started = timezone.now() - timedelta(hours=31)
    episode = start(knee, org["ORTHO"], alice, ref="PT-4421K", started_at=started)
    event(episode, "ASSESS", at=started + timedelta(hours=1), actor=alice)
    event(episode, "SURGERY", at=started + timedelta(hours=30), actor=alice)
    evaluate_episode(episode.pk)
    return Variance.objects.get(episode=episode, variance_type="delay")


def test_clinician_explains_from_the_inbox_and_the_lead_reviews(browser, page, live_server, late_surgery):
    browser_login(page, live_server, "alice")
    nav_count = page.locator("nav .count")
    assert nav_count.inner_text() == "1"

    page.get_by_role("link", name="Explain delay of Total knee replacement for PT-4421K").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Why did this happen?").is_visible()
    page.select_option("#id_reason", label="Treatment or service is not practically available")
    page.get_by_label("Rationale").fill("Emergency case took the morning list")
    page.get_by_role("button", name="Save reason").click()
    page.wait_for_load_state("networkidle")

    assert "the departure is documented with its reason" in page.locator(".messages").inner_text()
    assert page.locator("nav .count").count() == 0
    assert "No departures are waiting for a reason" in page.locator("#my-work").inner_text()

    lead = browser.new_context(viewport={"width": 390, "height": 844})  # a phone-sized screen
    try:
        lead_page = lead.new_page()
        lead_page.set_default_timeout(10_000)
        browser_login(lead_page, live_server, "bob")
        lead_page.goto(f"{live_server.url}/variances/review/")
        item = lead_page.locator(f"#review-{late_surgery.pk}")
        assert "Emergency case took the morning list" in item.inner_text()
        item.get_by_label("Yes").first.check()  # justified
        item.get_by_label("No").nth(1).check()  # not avoidable
        item.get_by_role("button", name="Save review").click()
        lead_page.get_by_text("Reviewed: justified, unavoidable.").wait_for()
    finally:
        lead.close()

    late_surgery.refresh_from_db()
    assert (late_surgery.status, late_surgery.justified, late_surgery.avoidable) == ("reviewed", True, False)
