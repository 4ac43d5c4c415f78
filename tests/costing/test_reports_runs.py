"""Report runs: identical requests coalesce; the task claims, fences and recovers runs."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
import time_machine
from celery.exceptions import Retry
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.utils import timezone

from accounts.models import AuditEvent
from costing import services, tasks
from costing.models import ReportRun
from costing.reports import ReportParameters
from costing.services import report_run_request
from tests.conftest import require
from tests.costing.factories import at, record_knee_actuals
from tests.pathways.tkr import build_tkr

pytestmark = pytest.mark.django_db

PARAMS = {"org_unit": "ORTHO", "pathways": ["TKR"], "date_from": "2025-04-01", "date_to": "2026-03-31"}


@pytest.fixture
def knee(org, alice):
    tkr = build_tkr(org["ORTHO"])
    with time_machine.travel(at(2025, 7, 1), tick=False):
        record_knee_actuals(tkr, unit=org["ORTHO-W7"], clinician=alice, started_at=at(2025, 6, 2, 8))
    return tkr


def test_it_joins_an_identical_request_instead_of_starting_another(knee, carol, bob):
    first, joined_first = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    same = {**PARAMS, "pathways": ["tkr"], "date_from": "2025-04-01"}  # same request, spelt differently
    second, joined_second = report_run_request(kind="cost", parameters=same, actor=bob)

    assert (joined_first, joined_second) == (False, True)
    assert second.pk == first.pk
    assert ReportRun.objects.count() == 1
    assert first.requested_by == carol
    assert AuditEvent.objects.filter(action="report.request", object_id=str(first.pk)).count() == 1


def test_it_starts_a_new_run_for_other_parameters_or_once_the_first_finished(knee, carol):
    cost, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    variance, joined = report_run_request(kind="variance", parameters=PARAMS, actor=carol)
    assert not joined and variance.pk != cost.pk
    other, joined = report_run_request(kind="cost", parameters={**PARAMS, "org_unit": "SURG"}, actor=carol)
    assert not joined and other.org_unit.code == "SURG"

    ReportRun.objects.filter(pk=cost.pk).update(status=ReportRun.Status.SUCCEEDED)
    again, joined = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    assert not joined and again.pk != cost.pk


def test_it_returns_the_winner_when_the_database_refuses_a_simultaneous_duplicate(knee, carol, monkeypatch):
    winner, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    calls = []
    real = services._live_run

    def look_up_too_early(key):
        # The first look-up happens before the other request's insert is visible.
        calls.append(key)
        return None if len(calls) == 1 else real(key)

    monkeypatch.setattr(services, "_live_run", look_up_too_early)
    run, joined = report_run_request(kind="cost", parameters=PARAMS, actor=carol)

    assert joined and run.pk == winner.pk
    assert len(calls) == 2  # refused by report_one_live_run_per_request, then found
    assert ReportRun.objects.count() == 1


def test_it_refuses_bad_parameters_with_a_message_per_field(org, carol):
    with pytest.raises(ValidationError) as caught:
        report_run_request(
            kind="cost",
            parameters={"org_unit": "NOPE", "date_from": "2025-13-01", "date_to": "2025-01-01", "pathways": ["XX"]},
            actor=carol,
        )
    errors = caught.value.message_dict
    assert "no organisational unit 'NOPE'" in errors["org_unit"][0]
    assert "YYYY-MM-DD" in errors["date_from"][0]
    assert "Unknown pathway: XX" in errors["pathways"][0]
    with pytest.raises(ValidationError):
        report_run_request(kind="budget", parameters=PARAMS, actor=carol)


def test_it_computes_a_requested_run_once_the_request_commits(knee, carol, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)

    run.refresh_from_db()
    assert (run.status, run.progress, run.attempts) == ("succeeded", 100, 1)
    assert run.result["summary"]["actual"] == "5330.5"
    assert run.result["summary"]["expected"] == "4167.125"
    assert run.started_at <= run.finished_at


def test_it_does_nothing_when_a_finished_run_is_delivered_again(knee, carol, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = report_run_request(kind="variance", parameters=PARAMS, actor=carol)
    run.refresh_from_db()
    result, finished = run.result, run.finished_at

    assert tasks.run_report(run.pk).startswith("nothing to do")

    run.refresh_from_db()
    assert (run.attempts, run.result, run.finished_at) == (1, result, finished)


def test_it_waits_for_the_lease_before_taking_over_a_run_held_elsewhere(knee, carol):
    run, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    ReportRun.objects.filter(pk=run.pk).update(status="running", attempts=1, heartbeat_at=timezone.now())

    with pytest.raises(Retry):
        tasks.run_report(run.pk)

    run.refresh_from_db()
    assert (run.status, run.attempts, run.result) == ("running", 1, None)


def test_it_takes_over_and_restarts_a_run_whose_worker_went_silent(knee, carol, settings):
    settings.REPORT_RUN_LEASE_SECONDS = 60
    run, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    silent = timezone.now() - timedelta(seconds=61)
    ReportRun.objects.filter(pk=run.pk).update(status="running", attempts=1, progress=40, heartbeat_at=silent)

    assert tasks.run_report(run.pk) == "succeeded"

    run.refresh_from_db()
    assert (run.status, run.attempts, run.progress) == ("succeeded", 2, 100)
    assert run.result["summary"]["episodes"] == 1


def test_it_discards_the_work_of_an_attempt_that_was_taken_over(knee, carol, monkeypatch):
    run, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    real_compute = tasks.compute

    def compute_while_another_worker_takes_over(kind, params, progress):
        ReportRun.objects.filter(pk=run.pk).update(attempts=99)  # the other attempt's fencing token
        return real_compute(kind, params, progress)

    monkeypatch.setattr(tasks, "compute", compute_while_another_worker_takes_over)

    assert tasks.run_report(run.pk) == "superseded"

    run.refresh_from_db()
    assert (run.status, run.result, run.attempts) == ("running", None, 99)


def test_it_marks_a_run_failed_when_its_parameters_no_longer_make_sense(knee, carol):
    run, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
    ReportRun.objects.filter(pk=run.pk).update(parameters={**PARAMS, "pathways": ["GONE"]})

    assert tasks.run_report(run.pk) == "failed"

    run.refresh_from_db()
    assert run.status == "failed"
    assert "Unknown pathway: GONE" in run.error


def test_the_sweeper_resends_unsent_and_abandoned_runs_at_most_once_a_minute(knee, carol, monkeypatch, settings):
    settings.REPORT_RUN_LEASE_SECONDS = 120
    sent = []
    monkeypatch.setattr(tasks.run_report, "delay", lambda run_id: sent.append(run_id))
    with time_machine.travel(timezone.now() - timedelta(minutes=5)):
        unsent, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)
        abandoned, _ = report_run_request(kind="variance", parameters=PARAMS, actor=carol)
    fresh, _ = report_run_request(kind="cost", parameters={**PARAMS, "org_unit": "SURG"}, actor=carol)
    ReportRun.objects.filter(pk=abandoned.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now() - timedelta(minutes=3)
    )

    assert tasks.sweep_report_runs() == 2
    assert sorted(sent) == sorted([unsent.pk, abandoned.pk])  # not the run requested a moment ago
    assert tasks.sweep_report_runs() == 1  # the abandoned one again; the unsent one waits a minute
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert tasks.sweep_report_runs() == 3  # a minute on, all three are due
    assert sorted(sent[3:]) == sorted([unsent.pk, abandoned.pk, fresh.pk])


def test_nightly_reports_request_both_reports_for_every_unit_people_work_in(knee, carol, alice, fred):
    with time_machine.travel(at(2026, 1, 10, 2), tick=False):
        assert tasks.nightly_reports() == 6  # SURG, ORTHO, RCH x variance, cost
        assert tasks.nightly_reports() == 0  # identical requests join the live runs
    runs = ReportRun.objects.all()
    assert {(r.org_unit.code, r.kind) for r in runs} == {
        (unit, kind) for unit in ("SURG", "ORTHO", "RCH") for kind in ("variance", "cost")
    }
    assert {r.requested_by for r in runs} == {None}
    params = ReportParameters.from_dict(runs[0].parameters)
    assert (params.date_from.isoformat(), params.date_to.isoformat()) == ("2025-01-11", "2026-01-10")


@pytest.mark.django_db(transaction=True)
def test_simultaneous_identical_requests_make_one_run(org, carol):
    require(connection.vendor == "postgresql", "concurrent writers need PostgreSQL")
    build_tkr(org["ORTHO"])
    barrier = Barrier(8)

    def request(_):
        try:
            barrier.wait()
            run, joined = report_run_request(kind="variance", parameters=PARAMS, actor=carol)
            return run.pk, joined
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(request, range(8)))

    assert len({pk for pk, _ in answers}) == 1
    assert sorted(joined for _, joined in answers) == [False] + [True] * 7
    assert ReportRun.objects.count() == 1


def test_it_marks_a_run_failed_on_an_unexpected_error_without_leaking_its_message(knee, carol, monkeypatch):
    run, _ = report_run_request(kind="cost", parameters=PARAMS, actor=carol)

    def broken(kind, params, progress):
        raise ZeroDivisionError("secret detail from deep inside")

    monkeypatch.setattr(tasks, "compute", broken)
    with pytest.raises(ZeroDivisionError):
        tasks.run_report(run.pk)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == "An unexpected error (ZeroDivisionError) stopped the computation."
    assert tasks.run_report(run.pk).startswith("nothing to do")  # not retried forever
