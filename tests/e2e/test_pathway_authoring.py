"""In a real browser: a clinical lead writes a pathway with two steps and publishes it;
a clinician sees no authoring controls and is refused the authoring URLs."""

import pytest
from playwright.sync_api import expect

from pathways.models import PathwayVersion
from tests.conftest import browser_login
from tests.pathways.builders import build_fracture

pytestmark = pytest.mark.browser


def test_a_lead_creates_a_pathway_with_two_steps_and_publishes_it(page, live_server, transactional_db, org, bob):
    browser_login(page, live_server, "bob")

    page.get_by_role("link", name="Pathways").first.click()
    page.get_by_role("link", name="New pathway").click()
    page.get_by_label("Code").fill("chest-pain")
    page.get_by_label("Name").fill("Chest pain in the emergency department")
    page.get_by_label("Specialty").fill("Cardiology")
    page.get_by_label("Owning unit").select_option(label=str(org["ORTHO"]))
    page.get_by_role("button", name="Create pathway").click()
    expect(page.get_by_text("Draft version 1")).to_be_visible()
    expect(page.get_by_text("A pathway needs at least one step")).to_be_visible()

    # a stage, inline
    page.get_by_role("link", name="Add a stage").click()
    page.get_by_label("Stage name").fill("Arrival")
    page.get_by_role("button", name="Add stage").click()
    expect(page.get_by_role("heading", name="1. Arrival")).to_be_visible()

    # first step; a bad window first: the error shows by the field, the input stays
    page.get_by_role("link", name="Add a step to Arrival").click()
    page.get_by_label("Code").fill("ecg")
    page.get_by_label("Name").fill("12-lead ECG")
    page.get_by_label("Earliest (minutes)").fill("20")
    page.get_by_label("Latest (minutes)").fill("10")
    page.get_by_role("button", name="Add step").click()
    expect(page.locator("#id_window_max_minutes_error")).to_have_text(
        "The latest time must not be before the earliest time."
    )
    expect(page.get_by_label("Name")).to_have_value("12-lead ECG")
    page.get_by_label("Earliest (minutes)").fill("0")
    page.get_by_role("button", name="Add step").click()
    expect(page.locator("#plan").get_by_text("0 min to 10 min after the episode start")).to_be_visible()

    # second step, timed from the first and required to follow it
    page.get_by_role("link", name="Add a step to Arrival").click()
    page.get_by_label("Code").fill("TROPONIN")
    page.get_by_label("Name").fill("High-sensitivity troponin")
    page.get_by_label("Timed from").select_option(label="ECG - 12-lead ECG")
    page.get_by_label("Latest (minutes)").fill("60")
    page.get_by_label("ECG - 12-lead ECG").check()
    page.get_by_role("button", name="Add step").click()
    expect(page.locator("#plan").get_by_text("within 1 h after ECG")).to_be_visible()
    expect(page.locator("#plan").get_by_text("Must follow:")).to_be_visible()
    expect(page.get_by_text("A pathway needs at least one step")).to_have_count(0)

    # publish with a change note
    page.get_by_role("link", name="Publish this version").click()
    page.get_by_label("Change note").fill("Agreed at the ED governance meeting")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 1")).to_be_visible()
    expect(page.get_by_role("link", name="Draft a new version")).to_be_visible()
    expect(page.get_by_role("link", name="Add a stage")).to_have_count(0)

    version = PathwayVersion.objects.get(pathway__code="CHEST-PAIN")
    assert version.status == "published"
    assert list(version.steps.order_by("order").values_list("code", flat=True)) == ["ECG", "TROPONIN"]


def test_a_clinician_sees_no_authoring_controls_and_is_refused(page, live_server, transactional_db, org, bob, alice):
    version = build_fracture(org["ORTHO"], bob)
    step = version.steps.get(code="SURGERY")
    browser_login(page, live_server, "alice")

    page.goto(f"{live_server.url}/pathways/")
    expect(page.get_by_role("link", name="NOF")).to_be_visible()
    expect(page.get_by_role("link", name="New pathway")).to_have_count(0)
    page.get_by_role("link", name="NOF").click()
    expect(page.locator("#plan").get_by_text("0 min to 3 days after the episode start")).to_be_visible()
    # the cost panel loads for everyone (no rates in this test: E is zero and says why not)
    expect(page.locator("#cost-panel")).to_contain_text("Expected cost of one episode")
    for control in ("Draft a new version", "Retire", "Edit details", "Add a stage", "Edit SURGERY"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)
        expect(page.get_by_role("link", name=control)).to_have_count(0)

    for url in ("/pathways/new/", "/pathways/NOF/v1/publish/", f"/pathways/steps/{step.pk}/edit/"):
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 403, url
        expect(page.get_by_role("heading", name="Not available to you")).to_be_visible()
