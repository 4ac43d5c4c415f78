"""Per-episode cost summaries (``EpisodeCost``), refreshed incrementally.

Reports aggregate these rows in the database instead of costing episodes in
Python each time. A summary is *stale* when it is missing, when its episode
changed after it was computed (``Episode.updated_at`` is bumped by every event,
variance and outcome write in ``variances/services.py``) or when any rate changed
after it was computed. Only stale episodes are recomputed, a batch per
transaction, so a report after 1% of episodes changed recomputes 1% of them,
and a run killed half way keeps the batches it finished.

Only closed episodes (completed or exited) have summaries: an active episode's
cost still grows with every day of its stay, so it is costed on demand instead
(``costing.engine.cost_episode``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, FilteredRelation, Max, Q, QuerySet
from django.utils import timezone

from config.pgcopy import copy_rows
from variances.models import Episode

from .engine import cost_episodes
from .models import CostRate, EpisodeCost, EpisodeCostLine

# Serialises refreshers on PostgreSQL (two report runs over overlapping episodes
# would otherwise delete and insert the same lines at once). SQLite serialises
# writers by itself.
_REFRESH_LOCK_KEY = 0x436F5354  # "CoST"


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
    condition = Q(summary__isnull=True) | Q(summary__source_updated_at__lt=F("updated_at"))
    rates_changed = CostRate.objects.aggregate(at=Max("updated_at"))["at"]
    if rates_changed is not None:
        condition |= Q(summary__computed_at__lt=rates_changed)
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
    committed batch (report progress; it may raise to stop).
    """
    batch_size = batch_size or settings.REPORT_SUMMARY_BATCH_SIZE
    scope = closed_episodes() if episodes is None else episodes
    total = stale(scope).count()
    done = 0
    last_pk = 0
    while done < total:
        # Keyset pagination: memory stays one batch whatever the number of episodes.
        ids = list(stale(scope, after=last_pk).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        _refresh_batch(ids)
        last_pk = ids[-1]
        done += len(ids)
        if on_batch is not None:
            on_batch(done, total)
    return done


def _refresh_batch(ids: list[int]) -> None:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REFRESH_LOCK_KEY])
        episodes = list(
            Episode.objects.filter(pk__in=ids).exclude(status=Episode.Status.ACTIVE).select_related("version")
        )
        costings = cost_episodes(episodes)
        now = timezone.now()
        zone = timezone.get_current_timezone()
        EpisodeCostLine.objects.filter(episode_cost_id__in=ids).delete()
        EpisodeCost.objects.filter(episode_id__in=ids).delete()
        summaries, lines = [], []
        for episode in episodes:
            costing = costings[episode.pk]
            started_on = episode.started_at.astimezone(zone).date()
            by_cause = costing.by_cause()
            summaries.append(
                (
                    episode.pk,
                    episode.version.pathway_id,
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
                    costing.missing_rates,
                    episode.updated_at,
                    now,
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
    "missing_rates",
    "source_updated_at",
    "computed_at",
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
