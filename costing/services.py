"""Requesting report runs. The browser, the API and the nightly beat job share this path.

A request identical to one still queued or running joins it instead of starting
another computation. "Identical" is the same kind and the same canonical
parameters (``ReportParameters.key``); the partial unique constraint
``report_one_live_run_per_request`` makes it hold under concurrency too: of two
simultaneous identical requests, one insert wins and the other, refused by the
database, returns the winner's run.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.audit import audit_record
from accounts.models import OrgUnit
from accounts.queueing import enqueue_on_commit

from .models import ReportRun
from .reports import ReportParameters

LIVE = (ReportRun.Status.QUEUED, ReportRun.Status.RUNNING)


def _live_run(key: str) -> ReportRun | None:
    return ReportRun.objects.filter(parameters_key=key, status__in=LIVE).first()


def report_run_request(*, kind: str, parameters: dict | ReportParameters, actor) -> tuple[ReportRun, bool]:
    """Queue a report run, or join the identical live one. Returns ``(run, joined)``.

    Raises ``ValidationError`` for an unknown kind or bad parameters.
    """
    if kind not in ReportRun.Kind.values:
        raise ValidationError({"kind": f"Choose a report kind: {', '.join(ReportRun.Kind.values)}."})
    params = parameters if isinstance(parameters, ReportParameters) else ReportParameters.from_dict(parameters)
    key = params.key(kind)
    existing = _live_run(key)
    if existing is not None:
        return existing, True
    person = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            run = ReportRun(
                kind=kind,
                parameters=params.to_dict(),
                parameters_key=key,
                org_unit=OrgUnit.objects.get(code=params.org_unit),
                requested_by=person,
            )
            run.full_clean(validate_constraints=False)  # the insert itself enforces the live-run constraint
            run.save(force_insert=True)
            audit_record(
                action="report.request",
                actor=person,
                obj=run,
                detail={"kind": kind, "parameters": run.parameters},
            )
            _enqueue(run.pk)
    except IntegrityError:
        # An identical request won the race between our look-up and our insert.
        existing = _live_run(key)
        if existing is None:
            raise
        return existing, True
    return run, False


def _enqueue(run_id: int) -> None:
    """Send the run to a worker once the transaction commits.

    Robust (``accounts.queueing``): if the broker is down, the request still
    succeeds, the run stays queued and ``costing.sweep_report_runs`` sends it later.
    """
    from .tasks import run_report

    enqueue_on_commit(run_report, run_id)
