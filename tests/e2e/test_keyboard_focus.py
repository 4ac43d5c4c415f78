"""In a real browser, by keyboard alone: after each HTMX swap, focus lands where the next step is
(a new form's first field, the error summary, the item that changed, the review's outcome), never
on <body>, where the next Tab would start again from the top of the page."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import browser_login
from tests.pathways.builders import build_fracture
from tests.variances.factories import build_pathway, reason, start, step
from variances import services

pytestmark = pytest.mark.browser


def active(page) -> str:
    """What has focus, as a keyboard user would hear it: its id or, failing that, its tag and text."""
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.id || `${e.tagName.toLowerCase()}: ${e.textContent.trim().slice(0, 60)}`; }"
    )


def settled(page) -> None:
    """Wait until HTMX has settled the last swap (it wires new content then, a few ms after it shows)."""
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


def test_focus_follows_each_inline_change_to_a_draft_plan(page, live_server, transactional_db, org, bob):
    version = build_fracture(org["ORTHO"], bob, publish=False)
    surgery, mobilise = (version.steps.get(code=code) for code in ("SURGERY", "MOBILISE"))
    admission, theatre = version.stages.order_by("order")
    browser_login(page, live_server, "bob")
    page.goto(f"{live_server.url}/pathways/NOF/v{version.number}/")
    page.on("dialog", lambda dialog: dialog.accept())  # "Remove ...?" confirmations

    # Enter on "Add a stage": the new form's first field, and Tab goes on within the form
    page.get_by_role("link", name="Add a stage").press("Enter")
    expect(page.get_by_label("Stage name")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Add stage")).to_be_focused()

    # a failed submit: the error summary, which links to the field
    page.keyboard.press("Enter")
    summary = page.locator("#add-stage [data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Stage name: This field is required.")

    # a successful save: the new stage, and the status says what was done
    page.get_by_label("Stage name").fill("Recovery")
    page.get_by_label("Stage name").press("Enter")
    expect(page.get_by_role("heading", name="3. Recovery")).to_be_focused()
    expect(page.locator("#plan-status")).to_have_text("Stage added.")

    # Cancel returns to the control that opened the form
    page.get_by_role("link", name="Edit SURGERY").press("Enter")
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_focused()
    page.locator(f"#step-{surgery.pk}").get_by_role("link", name="Cancel").press("Enter")
    expect(page.get_by_role("link", name="Edit SURGERY")).to_be_focused()

    # a failed edit, then a saved one: the error summary, then the step
    page.get_by_role("link", name="Edit SURGERY").press("Enter")
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_focused()
    page.get_by_role("textbox", name="Name", exact=True).fill("")
    page.get_by_role("textbox", name="Name", exact=True).press("Enter")
    expect(page.locator(f"#step-{surgery.pk} [data-error-summary]")).to_be_focused()
    page.get_by_role("textbox", name="Name", exact=True).fill("Hip fracture surgery")
    page.get_by_role("textbox", name="Name", exact=True).press("Enter")
    expect(page.locator(f"#step-{surgery.pk}-title")).to_be_focused()
    expect(page.locator(f"#step-{surgery.pk}-title")).to_contain_text("Hip fracture surgery")

    # Move down, with a further move possible: the same button, for the next press
    page.get_by_role("button", name="Move down stage Admission").press("Enter")
    expect(page.get_by_role("heading", name="2. Admission")).to_be_visible()
    settled(page)
    expect(page.locator(f"#stage-{admission.pk}-down")).to_be_focused()
    # Up, to the top, where no Up is left: the step itself
    page.get_by_role("button", name="Up MOBILISE").press("Enter")
    expect(page.locator(f"#step-{mobilise.pk}-title")).to_be_focused()
    expect(page.get_by_role("button", name="Up MOBILISE")).to_have_count(0)
    expect(page.locator("#plan-status")).to_have_text("MOBILISE moved.")

    # a removal the rules refuse: why, first
    page.get_by_role("button", name="Remove SURGERY").press("Enter")
    refusal = page.locator("#plan [data-error-summary]")
    expect(refusal).to_be_focused()
    expect(refusal).to_contain_text("SURGERY is the timing anchor of MOBILISE")

    # Remove: the stage the step was in
    page.get_by_role("button", name="Remove MOBILISE").press("Enter")
    expect(page.get_by_role("heading", name="1. Theatre")).to_be_focused()
    expect(page.locator("#plan-status")).to_have_text("MOBILISE removed.")
    assert active(page) == f"stage-{theatre.pk}-title"

    # a whole stage removed: the plan's heading, since the stage is gone
    page.get_by_role("button", name="Remove stage Recovery").press("Enter")
    expect(page.get_by_role("heading", name="3. Recovery")).to_have_count(0)
    expect(page.get_by_role("heading", name="Plan", exact=True)).to_be_focused()
    expect(page.locator("#cost-panel")).to_contain_text("Expected cost of one episode")  # loaded: nothing in flight


@pytest.fixture
def two_to_review(transactional_db, org, alice, bob):
    reason()  # seed the catalogue: the live server's test database was flushed
    knee = build_pathway(org["ORTHO"])
    started = timezone.now() - timedelta(hours=3)
    variances = []
    for ref, code in (("PT-5501K", "ASSESS"), ("PT-5502K", "SURGERY")):
        episode = start(knee, org["ORTHO"], alice, ref=ref, started_at=started)
        variances.append(
            services.variance_record(
                episode=episode,
                step=step(knee, code),
                variance_type="delay",
                cause="system",
                reason=reason("limited-time"),
                valence="negative",
                occurred_at=started + timedelta(hours=1),
                actor=alice,
            )
        )
    return variances


def test_focus_follows_a_review_saved_from_the_queue(page, live_server, two_to_review):
    first = two_to_review[0]
    browser_login(page, live_server, "bob")
    page.goto(f"{live_server.url}/variances/review/")
    item = page.locator(f"#review-{first.pk}")

    # nothing chosen: focus on the first choice in error, its group named and its error described
    item.get_by_role("button", name="Save review").press("Enter")
    justified_yes = item.get_by_role("group", name="Justified?").get_by_label("Yes")
    expect(justified_yes).to_be_focused()
    expect(justified_yes).to_have_attribute("aria-invalid", "true")
    expect(item.get_by_role("group", name="Justified?")).to_have_accessible_description("This field is required.")
    expect(item.locator("input[name=next]")).to_have_value("/variances/review/")

    # by keyboard: Space picks Yes; Tab to the next group, whose first choice is "Yes": arrow to No
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")
    expect(item.get_by_role("group", name="Avoidable?").get_by_label("No")).to_be_checked()
    item.get_by_role("button", name="Save review").press("Enter")

    outcome = item.get_by_role("status")
    expect(outcome).to_have_text("Reviewed: justified, unavoidable.")
    expect(outcome).to_be_focused()
