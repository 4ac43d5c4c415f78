"""Report runs on a real Celery worker through Redis, including a worker killed mid-run."""

import time

import pytest
import time_machine
from django.db import connection

from costing.models import EpisodeCost, ReportRun
from costing.services import report_run_request
from tests.conftest import require
from tests.costing.factories import at, generate_dataset, record_knee_actuals, two_pathways
from tests.pathways.tkr import build_tkr
from variances.models import Episode

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PARAMS = {"org_unit": "ORTHO", "pathways": [], "date_from": "2025-04-01", "date_to": "2026-03-31"}


@pytest.fixture(autouse=True)
def shared_database():
    require(connection.vendor == "postgresql", "a worker subprocess shares the test database on PostgreSQL only")


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true after {timeout}s")


def run_now(pk: int) -> ReportRun:
    return ReportRun.objects.get(pk=pk)


def test_it_computes_a_report_on_a_real_worker_through_redis(celery_worker_process, org, alice, carol):
    tkr = build_tkr(org["ORTHO"])
    with time_machine.travel(at(2025, 7, 1), tick=False):
        record_knee_actuals(tkr, unit=org["ORTHO-W7"], clinician=alice, started_at=at(2025, 6, 2, 8))
    worker = celery_worker_process()

    run, joined = report_run_request(kind="cost", parameters=PARAMS, actor=carol)

    done = wait_for(lambda: run_now(run.pk).status == "succeeded" and run_now(run.pk))
    assert not joined
    assert done.result["summary"]["actual"] == "5330.5"
    assert done.result["summary"]["system"] == "896"
    assert (done.attempts, done.progress) == (1, 100)
    assert b"costing.run_report" in worker.log_path.read_bytes()


def test_a_worker_killed_mid_run_still_yields_exactly_one_result(
    celery_worker_process, org, alice, bob, carol, monkeypatch
):
    # Small batches make many progress checkpoints; a short lease and visibility
    # timeout let the restarted worker take the run over within seconds, not an hour.
    monkeypatch.setenv("REPORT_SUMMARY_BATCH_SIZE", "20")
    monkeypatch.setenv("REPORT_RUN_LEASE_SECONDS", "3")
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", "2")
    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"], org["ORTHO-W7"]], clinicians=[alice, bob], n=3000)
    closed = Episode.objects.exclude(status="active").count()
    first = celery_worker_process()

    run, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    wait_for(lambda: run_now(run.pk).status == "running" and 10 <= run_now(run.pk).progress <= 50)
    joined_run, joined = report_run_request(kind="cost", parameters=PARAMS, actor=bob)
    first.kill()  # SIGKILL mid-run: no warm shutdown, the message stays unacknowledged

    killed = run_now(run.pk)
    assert (killed.status, killed.result, killed.attempts) == ("running", None, 1)
    assert joined and joined_run.pk == run.pk
    kept = EpisodeCost.objects.count()
    assert 0 < kept < closed  # the batches committed before the kill survive

    # Redis hands an unacknowledged message out again once it is older than the
    # visibility timeout; a starting worker sweeps for such messages at once.
    time.sleep(2.5)
    second = celery_worker_process()
    done = wait_for(lambda: run_now(run.pk).status == "succeeded" and run_now(run.pk), timeout=90)

    assert done.attempts == 2
    assert done.result["summary"]["episodes"] == closed
    assert EpisodeCost.objects.count() == closed
    assert ReportRun.objects.count() == 1
    assert ReportRun.objects.filter(status="succeeded").count() == 1
    time.sleep(1)
    assert run_now(run.pk).finished_at == done.finished_at  # no later attempt wrote a second result
    assert b"costing.run_report" in second.log_path.read_bytes()
