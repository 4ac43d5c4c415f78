"""In a real browser: the admin imports an ED export and reads what it found."""

import pytest

from tests.conftest import browser_login
from tests.variances.importing import GOOD, POOR, T0, sepsis_version, write_csv

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_admin_uploads_a_log_and_sees_the_summary_and_step_adherence(
    page, live_server, erin, org, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path / "media"
    sepsis_version(org)
    path = write_csv(tmp_path / "ed-export.csv", [("A", T0, GOOD), ("B", T0, POOR)])
    browser_login(page, live_server, "erin")

    page.get_by_role("link", name="Import").click()
    page.get_by_label("Event log").set_input_files(str(path))
    page.get_by_label("Pathway").select_option(label="SEPSIS-ED - Sepsis in the emergency department")
    page.get_by_label("Mapping", exact=True).select_option("sepsis-4tu.json")
    page.get_by_label("Org unit of the episodes").select_option(label="Emergency Department (ED)")
    page.get_by_label("Close each episode at its last event").check()
    page.get_by_role("button", name="Start the import").click()

    page.get_by_role("heading", name="Import of ed-export.csv").wait_for()
    status = page.locator("#import-status")
    status.get_by_text("Imported.").wait_for()
    assert "2 created, 0 updated, 0 unchanged" in status.inner_text()
    row = status.get_by_role("row", name="IV antibiotics within 1 hour of sepsis screening")
    assert row.get_by_role("cell").first.inner_text().startswith("0 of 2")

    page.set_viewport_size({"width": 360, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # the table scrolls, not the page
