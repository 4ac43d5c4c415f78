"""In a real browser: the manager runs a cost report, watches its progress, sees the chart
and downloads the workbook, which holds the figures she saw with small cells hidden.

With a broker and PostgreSQL (as in CI) the report is computed by a real Celery worker
and the progress bar is watched while it runs; without them the run is computed in
the request and the page shows it finished.
"""

import io
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from openpyxl import load_workbook
from playwright.sync_api import expect

from costing.models import ReportRun, financial_year_of
from tests.conftest import browser_login
from tests.costing.factories import generate_dataset, two_pathways

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.serial]  # serial: a real worker under CI


@pytest.fixture
def hospital(transactional_db, org, alice, bob, carol):
    hip, gall = two_pathways(org["ORTHO"], financial_year=financial_year_of(timezone.localdate()) - 1)
    recent = {"start": timezone.now() - timedelta(days=300), "days": 280}  # inside the default 12 months
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice, bob], n=1500, seed=21, **recent)
    # Four episodes on Ward 7: a small cell a manager must not see.
    generate_dataset(
        pathways=[hip], units=[org["ORTHO-W7"]], clinicians=[alice], n=4, seed=22, active_share=0, **recent
    )
    return org


@pytest.fixture
def worker(request, hospital):
    """A real worker when a broker is configured on PostgreSQL; in-process otherwise."""
    if not (settings.CELERY_BROKER_URL and connection.vendor == "postgresql"):
        yield None
        return
    from config.celery import app

    start = request.getfixturevalue("celery_worker_process")
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        # Small batches: many progress updates, so that the bar is seen to move however fast the engine.
        yield start(settings={"REPORT_SUMMARY_BATCH_SIZE": "5"})
    finally:
        app.conf.task_always_eager = previous


def test_manager_runs_a_cost_report_watches_progress_sees_the_chart_and_downloads_it(page, live_server, worker):
    browser_login(page, live_server, "carol")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    page.wait_for_load_state("networkidle")
    cost = page.locator("#section-cost")
    expect(cost).to_contain_text("No cost report has been computed for Surgery yet")

    cost.get_by_role("button", name="Run now").click()

    status = page.locator("#status-cost")
    if worker is not None:
        bar = status.locator("progress")
        expect(bar).to_be_visible()
        seen = set()
        deadline = time.monotonic() + 60
        while bar.count() and time.monotonic() < deadline:
            seen.add(bar.get_attribute("value"))
            time.sleep(0.1)
        assert len(seen) > 1, f"the progress bar did not move: {seen}"  # it moved while the worker computed
    expect(cost.locator("figure.chart-waterfall svg")).to_be_visible(timeout=60_000)
    expect(cost.locator("figure.chart-waterfall figcaption")).to_have_text("From expected to actual cost")
    expect(cost).to_contain_text("Figures computed")
    run = ReportRun.objects.get(kind="cost")
    assert (run.status, run.requested_by.username) == ("succeeded", "carol")
    table = cost.locator("#table-cost-by_component")  # the chart's table fallback
    expect(table.get_by_role("rowheader", name="Total variance")).to_be_visible()

    cost.get_by_role("link", name="Full report and downloads").click()
    page.wait_for_load_state("networkidle")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download all tables (XLSX)").click()
    download = download_info.value
    assert download.suggested_filename == f"commonpath-cost-report-{run.pk}-surg.xlsx"
    book = load_workbook(io.BytesIO(open(download.path(), "rb").read()))  # noqa: SIM115

    assert book["Report"]["A1"].value == f"Cost report #{run.pk}"
    assert "Clinicians" not in book.sheetnames  # a manager sees units, never named clinicians
    units = {row[0].value: [c.value for c in row] for row in book["By unit"].iter_rows(min_row=2)}
    assert units["Ward 7"][1:4] == ["*", "*", "*"]
    pathways = book["By pathway"]
    header = [c.value for c in pathways[1]]
    total = [c.value for c in pathways[pathways.max_row]]
    assert total[0] == "All"
    assert total[header.index("Episodes")] == run.result["summary"]["episodes"]
    assert round(total[header.index("Actual (£)")], 2) == round(float(run.result["summary"]["actual"]), 2)
    expect(page.locator(".cards")).to_contain_text(f"{run.result['summary']['episodes']:,}")
