"""Browser imports in the background: queue a job, run it in Celery, report progress.

``import_job_create`` stores the upload and queues the task on commit; the task
``variances.import_events`` claims the job with a conditional UPDATE (so a
re-delivered message cannot run it twice at once), runs the same importer as
``manage.py import_events`` and writes the summary to the job row. The job row is
the outbox: ``variances.sweep_import_jobs`` (beat, every minute) sends again a job
still queued a minute after it was last sent (the broker was down when it was
queued) or one whose worker went silent past the lease. The import
itself is one transaction, so its progress is written from a second database
connection of its own (PostgreSQL), where the polling page can see it at once.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import F, Q
from django.template.defaultfilters import pluralize
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import OrgUnit
from accounts.queueing import enqueue_on_commit
from pathways.models import Pathway

from .importers import ImportFailed, ImportSummary, Mapping, MappingError, import_events, parse_mapping
from .models import ImportJob

logger = logging.getLogger(__name__)

# A running job whose progress has been silent this long lost its worker.
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 3
# A job still queued this long after it was (last) sent was lost with the broker: send it again.
RESEND_AFTER = timedelta(minutes=1)


@transaction.atomic
def import_job_create(
    *,
    upload,
    pathway: Pathway,
    org_unit: OrgUnit,
    mapping: Mapping,
    closed: bool,
    dry_run: bool,
    skip_bad: bool,
    actor,
) -> ImportJob:
    """Store an uploaded event log and queue its import (the task runs once this commits)."""
    job = ImportJob(
        requested_by=actor,
        pathway=pathway,
        org_unit=org_unit,
        mapping_name=mapping.name[:200],
        mapping=mapping.document,
        file_name=Path(upload.name).name[:255],
        file_size=upload.size or 0,
        closed=closed,
        dry_run=dry_run,
        skip_bad=skip_bad,
    )
    job.upload.save(f"import-{timezone.now():%Y%m%d%H%M%S%f}.upload", upload, save=False)
    job.full_clean(exclude=["upload"])
    job.save()
    audit_record(
        action="events.import_queued",
        actor=actor,
        obj=job,
        detail={
            "file": job.file_name,
            "size": job.file_size,
            "pathway": pathway.code,
            "org_unit": org_unit.code,
            "mapping": job.mapping_name,
            "closed": closed,
            "dry_run": dry_run,
            "skip_bad": skip_bad,
        },
    )
    enqueue_on_commit(import_events_task, job.pk)  # sent again by sweep_import_jobs if the broker is down
    return job


def _claim(job_id: int) -> tuple[ImportJob | None, str]:
    """Take the job for this worker: ``(job, "")``, or ``(None, why not)``."""
    now = timezone.now()
    takeable = Q(status=ImportJob.Status.QUEUED) | Q(status=ImportJob.Status.RUNNING, heartbeat_at__lt=now - LEASE)
    claimed = (
        ImportJob.objects.filter(takeable, pk=job_id, attempts__lt=MAX_ATTEMPTS).update(
            status=ImportJob.Status.RUNNING, started_at=now, heartbeat_at=now, progress=0, attempts=F("attempts") + 1
        )
        == 1
    )
    job = ImportJob.objects.select_related("pathway", "org_unit", "requested_by").filter(pk=job_id).first()
    if job is None:
        return None, "gone"
    if claimed:
        return job, ""
    if job.status == ImportJob.Status.RUNNING and job.attempts >= MAX_ATTEMPTS:
        _finish(job, status=ImportJob.Status.FAILED, error="The import was interrupted three times and was given up.")
        return None, "given up"
    return None, job.status


class ProgressWriter:
    """Progress (share of the file read, cases and events so far) written outside the import's transaction."""

    MIN_INTERVAL = 0.5  # seconds between writes

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.last = 0.0
        # SQLite has one writer at a time: a second connection would wait for the
        # import's own transaction. There, tasks run in-process and the page
        # shows the result when the request returns.
        self.db = connections.create_connection(DEFAULT_DB_ALIAS) if connection.vendor == "postgresql" else None

    def __call__(self, done: int, total: int, summary: ImportSummary) -> None:
        if self.db is None:
            return
        now = time.monotonic()
        if now - self.last < self.MIN_INTERVAL and done < total:
            return
        self.last = now
        percent = min(99, int(100 * done / total)) if total else 99
        with self.db.cursor() as cursor:
            cursor.execute(
                f"UPDATE {ImportJob._meta.db_table} SET progress = %s, heartbeat_at = %s, "  # noqa: S608 - table name from the model
                "summary = %s::jsonb WHERE id = %s AND status = %s",
                [
                    percent,
                    timezone.now(),
                    f'{{"cases_read": {summary.cases_read}, "events_read": {summary.events_read}}}',
                    self.job_id,
                    ImportJob.Status.RUNNING,
                ],
            )

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


@contextmanager
def _local_path(job: ImportJob):
    """A path on this machine to read the upload from (a temporary copy for remote storage)."""
    try:
        local = job.upload.path
    except NotImplementedError:  # remote storage (S3 and the like) has no local path
        local = None
    if local is not None:
        yield Path(local)
        return
    with job.upload.open("rb") as source, tempfile.NamedTemporaryFile(prefix="commonpath-import-") as copy:
        shutil.copyfileobj(source, copy, 1 << 20)
        copy.flush()
        yield Path(copy.name)


def _finish(job: ImportJob, *, status: str, error: str = "", summary: dict | None = None) -> None:
    """Record the outcome and delete the upload: whatever happened, the file is not kept."""
    if job.upload:
        job.upload.delete(save=False)
    ImportJob.objects.filter(pk=job.pk).update(
        status=status,
        error=error,
        summary=summary if summary is not None else job.summary,
        progress=100 if status == ImportJob.Status.SUCCEEDED else F("progress"),
        finished_at=timezone.now(),
        upload="",
    )


def import_job_run(job_id: int) -> str:
    """Run a queued import job; returns its final status (or why it was not run)."""
    job, why = _claim(job_id)
    if job is None:
        return why
    if not job.upload:
        _finish(job, status=ImportJob.Status.FAILED, error="The uploaded file is no longer there; upload it again.")
        return ImportJob.Status.FAILED
    progress = ProgressWriter(job.pk)
    try:
        mapping = parse_mapping(job.mapping, name=job.mapping_name)
        with _local_path(job) as path:
            summary = import_events(
                path,
                mapping=mapping,
                pathway_code=job.pathway.code,
                org_unit=job.org_unit,
                closed=job.closed,
                dry_run=job.dry_run,
                skip_bad=job.skip_bad,
                actor=job.requested_by,
                file_name=job.file_name,
                progress=progress,
            )
    except (ImportFailed, MappingError, ValidationError) as exc:
        _finish(job, status=ImportJob.Status.FAILED, error=str(exc)[:5000])
        return ImportJob.Status.FAILED
    except Exception as exc:
        # Not the file's fault: keep the details in the server log, tell the admin what happened.
        logger.exception("import job %s failed", job.pk)
        _finish(
            job,
            status=ImportJob.Status.FAILED,
            error=f"The import stopped unexpectedly ({exc.__class__.__name__}); nothing was saved. "
            "The server log has the details.",
        )
        return ImportJob.Status.FAILED
    finally:
        progress.close()
    if summary.committed or summary.dry_run:
        _finish(job, status=ImportJob.Status.SUCCEEDED, summary=summary.to_dict())
        return ImportJob.Status.SUCCEEDED
    _finish(
        job,
        status=ImportJob.Status.FAILED,
        error=f"The file has {summary.problem_count} problem{pluralize(summary.problem_count)}, so nothing was imported. "
        f"Fix {pluralize(summary.problem_count, 'it,them')}, "
        "or import again with 'Skip cases with problems' ticked.",
        summary=summary.to_dict(),
    )
    return ImportJob.Status.FAILED


@shared_task(name="variances.import_events", bind=True, max_retries=MAX_ATTEMPTS)
def import_events_task(self, job_id: int) -> str:
    """Idempotent: a job runs once; a message for a job another worker is running is retried after the lease."""
    outcome = import_job_run(job_id)
    if outcome == ImportJob.Status.RUNNING:
        raise self.retry(countdown=int(LEASE.total_seconds()))
    return outcome


@shared_task(name="variances.sweep_import_jobs")
def sweep_import_jobs() -> int:
    """Beat, every minute: send again jobs queued but never delivered (broker outage) or abandoned by their worker."""
    now = timezone.now()
    unsent = Q(status=ImportJob.Status.QUEUED, requested_at__lt=now - RESEND_AFTER) & (
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - RESEND_AFTER)
    )
    silent = Q(status=ImportJob.Status.RUNNING, heartbeat_at__lt=now - LEASE)
    sent = 0
    for job_id in ImportJob.objects.filter(unsent | silent).order_by("pk").values_list("pk", flat=True):
        # For a queued job, heartbeat_at records when it was last sent: at most once a minute.
        ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(heartbeat_at=now)
        import_events_task.delay(job_id)
        sent += 1
    return sent
