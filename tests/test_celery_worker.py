"""A real Celery worker consumes a task from Redis and its effect lands in the database."""

import time

import pytest

from accounts.audit import audit_record
from accounts.models import AuditCheck, AuditEvent
from accounts.services import audit_check_request

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true after {timeout}s")


def finished(check_id: int) -> AuditCheck | None:
    check = AuditCheck.objects.get(pk=check_id)
    return check if check.is_finished else None


def test_it_verifies_the_audit_chain_on_a_real_worker(celery_worker_process, erin):
    for i in range(3):
        audit_record(action="variance.record", actor=erin, object_type="variances.variance", object_id=str(i))
    worker = celery_worker_process()

    check = audit_check_request(requested_by=erin)

    done = wait_for(lambda: finished(check.pk))
    assert done.status == AuditCheck.Status.PASSED
    assert done.events_checked == AuditEvent.objects.count() == 4  # three records and the request itself
    assert done.started_at <= done.finished_at
    assert b"accounts.verify_audit_chain" in worker.log_path.read_bytes()


def test_it_queues_nothing_until_the_request_commits(celery_worker_process, erin):
    """delay_on_commit: a rolled-back request leaves no task behind for the worker."""
    from django.db import transaction

    worker = celery_worker_process()
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = audit_check_request(requested_by=erin)
        raise RuntimeError("the request failed after asking for a check")

    kept = audit_check_request(requested_by=erin)

    wait_for(lambda: finished(kept.pk))
    time.sleep(1)  # a task queued by the rolled-back request would have arrived first
    assert not AuditCheck.objects.filter(pk=rolled_back.pk).exists()
    received = worker.log_path.read_text().count("Task accounts.verify_audit_chain[")
    assert received == 2  # "received" and "succeeded" lines of the one committed task
