"""Per-episode cost summaries (``EpisodeCost``), refreshed incrementally.

Reports aggregate these rows in the database instead of costing episodes in
Python each time. A summary is *stale* when it is missing, when its episode
changed after it was computed (``Episode.updated_at`` is bumped by every event,
variance and outcome write in ``variances/services.py``), when any rate changed
after it was computed, when a resource it has a line of changed what it is
(salaried, unit or kind: ``Resource.costing_changed_at``) after it was computed,
or when it was computed under earlier costing rules
(``costing.engine.RULES_VERSION``). Only stale episodes are recomputed, a batch per
transaction, so a report after 1% of episodes changed recomputes 1% of them,
and a run killed half way keeps the batches it finished.

Only closed episodes (completed or exited) have summaries: an active episode's
cost still grows with every day of its stay, so it is costed on demand instead
(``costing.engine.cost_episode``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, F, FilteredRelation, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from config.background import BackgroundWriter
from config.pgcopy import copy_buffer, copy_rows, copy_statement, rows_text
from pathways.models import Resource
from variances.models import Episode

from .engine import RULES_VERSION, cost_episodes
from .models import CostRate, EpisodeCost, EpisodeCostLine

# Serialises refreshers on PostgreSQL (two report runs over overlapping episodes
# would otherwise delete and insert the same lines at once). SQLite serialises
# writers by itself.
_REFRESH_LOCK_KEY = 0x436F5354  # "CoST"

logger = logging.getLogger(__name__)


def closed_episodes() -> QuerySet:
    return Episode.objects.exclude(status=Episode.Status.ACTIVE)


def stale(episodes: QuerySet, *, after: int = 0) -> QuerySet:
    """The closed episodes among ``episodes`` whose summary is missing or out of date (ids above ``after``).

    Each refresh batch asks for the next stale ids above the last one it did. The
    bound is given to both sides of the join: PostgreSQL does not carry it across
    an outer join by itself, and each batch would read the summary table from its
    start (quadratic in the number of episodes).
    """
    # The bound sits in the join's ON clause, where PostgreSQL applies it to the summaries' index scan.
    summary = FilteredRelation("cost_summary", condition=Q(cost_summary__episode_id__gt=after))
    condition = (
        Q(summary__isnull=True)
        | Q(summary__source_updated_at__lt=F("updated_at"))
        | Q(summary__rules_version__lt=RULES_VERSION)
    )
    rates_changed = CostRate.objects.aggregate(at=Max("updated_at"))["at"]
    if rates_changed is not None:
        condition |= Q(summary__computed_at__lt=rates_changed)
    resources_changed = Resource.objects.aggregate(at=Max("costing_changed_at"))["at"]
    if resources_changed is not None:
        # Only the summaries with a line of a resource changed after them. The cheap bound comes
        # first: once they are recomputed, no summary is older than the last change, and the
        # correlated look-up at the lines is not made at all.
        used_changed_resource = EpisodeCostLine.objects.filter(
            episode_cost_id=OuterRef("pk"), resource__costing_changed_at__gt=F("episode_cost__computed_at")
        )
        condition |= Q(summary__computed_at__lt=resources_changed) & Exists(used_changed_resource)
    return (
        episodes.exclude(status=Episode.Status.ACTIVE).filter(pk__gt=after).annotate(summary=summary).filter(condition)
    )


def episode_costs_refresh(
    *,
    episodes: QuerySet | None = None,
    batch_size: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute the stale summaries among ``episodes`` (all closed episodes by default).

    Returns how many were recomputed. ``on_batch(done, total)`` is called after each
    batch (report progress; it may raise to stop). Every batch is committed on its
    own: a run stopped half way keeps the batches it wrote.

    On PostgreSQL, outside a transaction, a run of several batches writes each batch
    on a second connection while it costs the next (``BackgroundWriter``): PostgreSQL's work
    of deleting, copying and checking the rows then overlaps Python's costing
    instead of following it. Such a run holds the refresh lock from start to end, so
    a second refresh waits and finds the summaries fresh, instead of writing figures
    it read before this run's over them.
    """
    batch_size = batch_size or settings.REPORT_SUMMARY_BATCH_SIZE
    scope = closed_episodes() if episodes is None else episodes

    def next_ids(after: int) -> list[int]:
        # Keyset pagination: memory stays a few batches whatever the number of episodes.
        return list(stale(scope, after=after).order_by("pk").values_list("pk", flat=True)[:batch_size])

    # A report usually finds few stale summaries or none: a first batch that is not full
    # is the whole run, and the count (a second pass over the scope) is spared.
    ids = next_ids(0)
    total = len(ids) if len(ids) < batch_size else stale(scope).count()
    overlap = connection.vendor == "postgresql" and not connection.in_atomic_block and total > batch_size
    done = 0
    with _batch_writer(overlap) as write:
        if overlap:
            ids = next_ids(0)  # read again under the run's lock: another run may have refreshed them meanwhile
        while ids:  # the next batch is read only while the count says more are stale
            if overlap:
                with transaction.atomic():
                    _one_snapshot()
                    summaries, lines = _compute(ids)
                # Formatted here: the writer's thread then only waits on PostgreSQL, without the GIL.
                write(ids, rows_text(summaries), rows_text(lines))
            else:
                with transaction.atomic():
                    _lock()  # read and written under the lock, as one transaction
                    _write(ids, *_compute(ids))
            done += len(ids)
            if on_batch is not None:
                on_batch(done, total)
            ids = next_ids(ids[-1]) if done < total else []
    if done:
        _analyze_if_rewritten(done)
    return done


def _analyze_if_rewritten(done: int) -> None:
    """Refresh the planner's statistics of the summary tables after a refresh rewrote a tenth of them.

    A rate change rewrites every summary. Autovacuum would analyze the tables on
    the same threshold (50 rows and a tenth of the table) but only within its next
    round, and the report that follows the refresh, seconds later, would be planned
    on the old statistics: at 10,000 episodes its line aggregates took twice as long.
    PostgreSQL samples a bounded number of rows, so this costs a fraction of a
    second at any size.
    """
    if connection.vendor != "postgresql":
        return
    tables = [EpisodeCost._meta.db_table, EpisodeCostLine._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [tables[0]])
        (known,) = cursor.fetchone()
        if done > 50 + 0.1 * max(known, 0):
            cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in tables))


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REFRESH_LOCK_KEY])


def _one_snapshot() -> None:
    """Make a batch's reads one snapshot, as when it read and wrote in one transaction.

    An event recorded between the read of the episodes and the read of their events
    would otherwise be costed against the episode's earlier ``updated_at``.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


@contextmanager
def _batch_writer(overlap: bool):
    """``write(ids, summaries, lines)``: rows on this connection, or COPY text on the writer's with ``overlap``.

    With ``overlap``, this connection holds the refresh lock for the whole run (the
    writer's batches are written under it), and every batch handed over is written
    before this returns or raises.
    """
    if not overlap:
        yield _write
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_REFRESH_LOCK_KEY])
    try:
        writer = BackgroundWriter("cost-summary-writer")
        try:
            yield lambda ids, summaries, lines: writer.put(lambda: _write_copy(ids, summaries, lines))
        except BaseException:
            writer.close(raise_error=False)
            if writer.error is not None:  # not to be lost behind the error already on its way
                logger.error("Writing cost summaries failed too", exc_info=writer.error)
            raise
        writer.close()
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_REFRESH_LOCK_KEY])
        except DatabaseError:
            connection.close()  # a session lock goes with its connection


def _write_copy(ids: list[int], summaries: io.StringIO, lines: io.StringIO) -> None:
    """The writer's job: one batch, already COPY text, in a transaction of its own (under the caller's lock)."""
    with transaction.atomic():
        _delete(ids)
        copy_buffer(copy_statement(EpisodeCost._meta.db_table, _SUMMARY_COLUMNS), summaries)
        copy_buffer(copy_statement(EpisodeCostLine._meta.db_table, _LINE_COLUMNS), lines)


def _compute(ids: list[int]) -> tuple[list[tuple], list[tuple]]:
    """The summary and line rows of the closed episodes among ``ids``, as COPY writes them."""
    now = timezone.now()  # before reading: a rate changed after this leaves the summaries stale
    # The pathway is all a summary needs of the version: one column, not a model instance per episode.
    episodes = list(
        Episode.objects.filter(pk__in=ids)
        .exclude(status=Episode.Status.ACTIVE)
        .annotate(pathway_id=F("version__pathway_id"))
    )
    costings = cost_episodes(episodes)
    zone = timezone.get_current_timezone()
    summaries, lines = [], []
    for episode in episodes:
        costing = costings[episode.pk]
        started_on = episode.started_at.astimezone(zone).date()
        by_cause = costing.by_cause()
        summaries.append(
            (
                episode.pk,
                episode.pathway_id,
                episode.version_id,
                episode.org_unit_id,
                episode.responsible_clinician_id,
                episode.status,
                started_on,
                started_on.replace(day=1),
                episode.ended_at.astimezone(zone).date(),
                costing.los_days,
                costing.expected_los_days,
                episode.readmitted_30d,
                episode.complication,
                settings.CURRENCY,
                costing.expected,
                costing.actual,
                costing.price_variance,
                costing.usage_variance,
                costing.los_variance,
                costing.capacity_variance,
                by_cause[EpisodeCost.Cause.PATIENT],
                by_cause[EpisodeCost.Cause.CLINICIAN],
                by_cause[EpisodeCost.Cause.SYSTEM],
                by_cause[EpisodeCost.Cause.COMMUNITY],
                by_cause[EpisodeCost.Cause.UNEXPLAINED],
                by_cause[EpisodeCost.Cause.REPEAT],
                costing.missing_rates,
                episode.updated_at,
                now,
                RULES_VERSION,
            )
        )
        for line in costing.lines:
            lines.append(
                (
                    episode.pk,
                    line.step.id if line.step is not None else None,
                    line.event.pk if line.event is not None else None,
                    line.resource.id,
                    line.salaried,
                    line.standard_quantity,
                    line.actual_quantity,
                    line.standard_rate,
                    line.standard_cost,
                    line.actual_cost,
                    line.price_variance,
                    line.usage_variance,
                    line.los_variance,
                    line.variance.id if line.variance is not None else None,
                    line.cause if line.total_variance else "",
                )
            )
    return summaries, lines


def _write(ids: list[int], summaries: list[tuple], lines: list[tuple]) -> None:
    """Replace the summaries of ``ids`` (an episode that became active again loses its summary)."""
    _delete(ids)
    _insert(EpisodeCost, _SUMMARY_COLUMNS, summaries)
    _insert(EpisodeCostLine, _LINE_COLUMNS, lines)


_SUMMARY_COLUMNS = (
    "episode_id",
    "pathway_id",
    "version_id",
    "org_unit_id",
    "responsible_clinician_id",
    "status",
    "started_on",
    "month",
    "ended_on",
    "los_days",
    "expected_los_days",
    "readmitted_30d",
    "complication",
    "currency",
    "expected",
    "actual",
    "price_variance",
    "usage_variance",
    "los_variance",
    "capacity_variance",
    "patient_variance",
    "clinician_variance",
    "system_variance",
    "community_variance",
    "unexplained_variance",
    "repeat_variance",
    "missing_rates",
    "source_updated_at",
    "computed_at",
    "rules_version",
)
_LINE_COLUMNS = (
    "episode_cost_id",
    "step_id",
    "event_id",
    "resource_id",
    "salaried",
    "standard_quantity",
    "actual_quantity",
    "standard_rate",
    "standard_cost",
    "actual_cost",
    "price_variance",
    "usage_variance",
    "los_variance",
    "variance_id",
    "cause",
)


def _delete(ids: list[int]) -> None:
    """Delete the batch's summaries and their lines in two statements.

    ``QuerySet.delete()`` would first load every summary to cascade to lines that
    are already gone (Django's deletion collector); nothing listens to their deletion.
    """
    with connection.cursor() as cursor:
        for model, column in ((EpisodeCostLine, "episode_cost_id"), (EpisodeCost, "episode_id")):
            table, column = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(column)
            marks = ", ".join(["%s"] * len(ids))
            cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)  # noqa: S608 - names from the models


def _insert(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert derived rows in bulk: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere.

    A full recomputation after a rate change writes every summary and about ten
    lines per episode; building model instances and INSERT parameters for them
    took longer than costing the episodes (bench/reports.py). The values are the
    engine's own (ids, Decimals at full precision, dates), so COPY's text format
    is written directly; PostgreSQL rounds to each column's scale as an INSERT would.
    """
    if not rows:
        return
    if connection.vendor == "postgresql":
        copy_rows(model._meta.db_table, columns, rows)
        return
    model.objects.bulk_create([model(**dict(zip(columns, row, strict=True))) for row in rows], batch_size=2000)
