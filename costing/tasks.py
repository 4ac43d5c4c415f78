"""Report runs in the background. The ``ReportRun`` row, not Celery, holds the state.

``costing.run_report`` is safe to deliver more than once:

- It *claims* the run with a conditional UPDATE (queued -> running). Only one
  delivery wins; any other finds the run already running or finished.
- Messages are acknowledged late and rejected if the worker dies
  (``task_acks_late``, ``task_reject_on_worker_lost``), so a run whose worker
  was killed is delivered again. The new delivery takes the run over once the
  dead attempt's heartbeat is older than ``REPORT_RUN_LEASE_SECONDS`` (it retries
  until then) and restarts it. Cost summaries finished by the dead attempt are
  kept (they are committed per batch), so the restart resumes where it stopped.
- Every progress update and the final write are conditional on the attempt
  number (a fencing token): an attempt that was taken over can write neither
  progress nor a result, so a run gets exactly one result.

``costing.sweep_report_runs`` (beat, every minute) is the outbox sweeper: it sends
again runs still queued a minute after they were last sent (a broker outage at
request time loses no run) and runs whose worker went silent past the lease.
``costing.nightly_reports`` requests the default reports for every unit people
work in, so each dashboard has fresh figures in the morning.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError
from django.db.models import F
from django.utils import timezone

from accounts.models import Membership, OrgUnit

from .models import ReportRun
from .reports import ReportParameters, compute
from .services import report_run_request

logger = logging.getLogger(__name__)

RESEND_AFTER = timedelta(minutes=1)


class Superseded(Exception):
    """This attempt no longer holds the run (another delivery took it over)."""


def _lease() -> timedelta:
    return timedelta(seconds=settings.REPORT_RUN_LEASE_SECONDS)


def _claim(run_id: int) -> bool:
    now = timezone.now()
    fresh = {"started_at": now, "heartbeat_at": now, "attempts": F("attempts") + 1, "progress": 0, "error": ""}
    if ReportRun.objects.filter(pk=run_id, status=ReportRun.Status.QUEUED).update(
        status=ReportRun.Status.RUNNING, **fresh
    ):
        return True
    # A running run whose heartbeat lapsed lost its worker: take it over.
    return bool(
        ReportRun.objects.filter(pk=run_id, status=ReportRun.Status.RUNNING, heartbeat_at__lt=now - _lease()).update(
            **fresh
        )
    )


@shared_task(name="costing.run_report", bind=True, max_retries=None)
def run_report(self, run_id: int) -> str:
    if not _claim(run_id):
        status = ReportRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
        if status == ReportRun.Status.RUNNING:
            # Held by an attempt whose heartbeat is fresh: alive elsewhere, or killed a
            # moment ago. Look again when its lease would have lapsed.
            raise self.retry(countdown=settings.REPORT_RUN_LEASE_SECONDS)
        return f"nothing to do: run {run_id} is {status or 'gone'}"
    run = ReportRun.objects.get(pk=run_id)
    mine = ReportRun.objects.filter(pk=run_id, status=ReportRun.Status.RUNNING, attempts=run.attempts)

    def progress(percent: int) -> None:
        if not mine.update(progress=max(0, min(int(percent), 99)), heartbeat_at=timezone.now()):
            raise Superseded

    try:
        params = ReportParameters.from_dict(run.parameters)
        result = compute(run.kind, params, progress)
    except Superseded:
        logger.info("report run %s attempt %s was taken over; stopping", run_id, run.attempts)
        return "superseded"
    except ValidationError as exc:
        # The parameters no longer make sense (e.g. a pathway code renamed): no retry helps.
        mine.update(status=ReportRun.Status.FAILED, error="; ".join(exc.messages), finished_at=timezone.now())
        return "failed"
    except OperationalError as exc:
        # The database went away mid-run: hand the run back to the queue and retry.
        logger.warning("report run %s: database unavailable (%s); retrying", run_id, exc)
        mine.update(status=ReportRun.Status.QUEUED, heartbeat_at=timezone.now())
        raise self.retry(countdown=30) from exc
    except Exception as exc:
        # A bug, not a transient fault: retrying would fail again. Record it (the class
        # only: messages can hold data) so the run ends failed instead of looking stuck.
        logger.exception("report run %s failed", run_id)
        mine.update(
            status=ReportRun.Status.FAILED,
            error=f"An unexpected error ({type(exc).__name__}) stopped the computation.",
            finished_at=timezone.now(),
        )
        raise
    now = timezone.now()
    if not mine.update(
        status=ReportRun.Status.SUCCEEDED, progress=100, result=result, finished_at=now, heartbeat_at=now
    ):
        logger.info("report run %s attempt %s finished after being taken over; result discarded", run_id, run.attempts)
        return "superseded"
    return "succeeded"


@shared_task(name="costing.sweep_report_runs")
def sweep_report_runs() -> int:
    """Send again runs that are queued but unsent (broker outage) or whose worker went silent."""
    now = timezone.now()
    queued = ReportRun.objects.filter(status=ReportRun.Status.QUEUED, requested_at__lt=now - RESEND_AFTER).exclude(
        heartbeat_at__gte=now - RESEND_AFTER
    )
    silent = ReportRun.objects.filter(status=ReportRun.Status.RUNNING, heartbeat_at__lt=now - _lease())
    sent = 0
    for run_id in list(queued.values_list("pk", flat=True)) + list(silent.values_list("pk", flat=True)):
        # For a queued run, heartbeat_at records when it was last sent: at most once a minute.
        ReportRun.objects.filter(pk=run_id, status=ReportRun.Status.QUEUED).update(heartbeat_at=now)
        run_report.delay(run_id)
        sent += 1
    return sent


@shared_task(name="costing.nightly_reports")
def nightly_reports() -> int:
    """Both reports, rolling twelve months, for every unit someone holds a role in."""
    units = OrgUnit.objects.filter(pk__in=Membership.objects.values("org_unit_id")).order_by("path")
    requested = 0
    for unit in units:
        params = ReportParameters.default_for(unit)
        for kind in ReportRun.Kind.values:
            _, joined = report_run_request(kind=kind, parameters=params, actor=None)
            requested += not joined
    return requested
