"""Background work of accounts: verifying the audit chain (nightly, and on request); purging old idempotency keys."""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .api_support import purge_idempotency_keys as purge_old_idempotency_keys
from .audit import latest_anchor, verify_chain
from .models import AuditCheck, AuditEvent

logger = logging.getLogger("commonpath.audit")

# A check still pending this long after it was requested was lost with the broker.
# Generous: a message sent twice walks the chain twice (harmless, but not free).
AUDIT_CHECK_RESEND_AFTER = timedelta(minutes=10)


@shared_task(name="accounts.verify_audit_chain")
def verify_audit_chain(check_id: int) -> str:
    """Walk the chain and store the verdict on ``AuditCheck`` ``check_id``.

    Idempotent: a finished check is left alone; a check still "running" (its worker
    was lost and the broker re-delivered the task) is simply run again, which is
    safe because verifying only reads.
    """
    claimed = AuditCheck.objects.filter(
        pk=check_id, status__in=[AuditCheck.Status.PENDING, AuditCheck.Status.RUNNING]
    ).update(status=AuditCheck.Status.RUNNING, started_at=timezone.now())
    if not claimed:
        return "already finished"
    # The end is read first: events appended while the chain is walked are left to the next check.
    end = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    count, bad, reason = verify_chain(anchor=latest_anchor())
    if bad is None:
        status, bad_id = AuditCheck.Status.PASSED, None
    else:
        status, bad_id = AuditCheck.Status.FAILED, bad.pk
        logger.error("audit chain broken at event %s: %s", bad.pk, reason)
    AuditCheck.objects.filter(pk=check_id, status=AuditCheck.Status.RUNNING).update(
        status=status,
        finished_at=timezone.now(),
        events_checked=count,
        first_bad_event_id=bad_id,
        reason=reason[:200],
        last_event_id=end[0] if end and bad is None else None,
        last_hash=end[1] if end and bad is None else "",
    )
    return status


@shared_task(name="accounts.nightly_audit_check")
def nightly_audit_check() -> int:
    """Beat: verify the chain every night, so tampering is noticed within a day."""
    from .services import audit_check_request  # services queue this module's tasks

    return audit_check_request().pk


@shared_task(name="accounts.sweep_audit_checks")
def sweep_audit_checks() -> int:
    """Beat: send again checks still pending long after they were requested (the broker was down)."""
    cutoff = timezone.now() - AUDIT_CHECK_RESEND_AFTER
    pending = AuditCheck.objects.filter(status=AuditCheck.Status.PENDING, requested_at__lt=cutoff)
    ids = list(pending.order_by("pk").values_list("pk", flat=True))
    for check_id in ids:
        verify_audit_chain.delay(check_id)
    return len(ids)


@shared_task(name="accounts.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Beat, hourly: forget API Idempotency-Key answers older than the retention period."""
    return purge_old_idempotency_keys()
