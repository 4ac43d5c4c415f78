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
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from variances.models import Episode

from .engine import cost_episodes, local_date
from .models import CostRate, EpisodeCost, EpisodeCostLine

# Serialises refreshers on PostgreSQL (two report runs over overlapping episodes
# would otherwise delete and insert the same lines at once). SQLite serialises
# writers by itself.
_REFRESH_LOCK_KEY = 0x436F5354  # "CoST"


def closed_episodes() -> QuerySet:
    return Episode.objects.exclude(status=Episode.Status.ACTIVE)


def stale(episodes: QuerySet) -> QuerySet:
    """The closed episodes among ``episodes`` whose summary is missing or out of date."""
    condition = Q(cost_summary__isnull=True) | Q(cost_summary__source_updated_at__lt=F("updated_at"))
    rates_changed = CostRate.objects.aggregate(at=Max("updated_at"))["at"]
    if rates_changed is not None:
        condition |= Q(cost_summary__computed_at__lt=rates_changed)
    return episodes.exclude(status=Episode.Status.ACTIVE).filter(condition)


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
    todo = stale(closed_episodes() if episodes is None else episodes)
    total = todo.count()
    done = 0
    last_pk = 0
    while done < total:
        # Keyset pagination: memory stays one batch whatever the number of episodes.
        ids = list(todo.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:batch_size])
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
        EpisodeCostLine.objects.filter(episode_cost_id__in=ids).delete()
        EpisodeCost.objects.filter(episode_id__in=ids).delete()
        summaries, lines = [], []
        for episode in episodes:
            costing = costings[episode.pk]
            started_on = local_date(episode.started_at)
            by_cause = costing.by_cause()
            summaries.append(
                EpisodeCost(
                    episode=episode,
                    pathway_id=episode.version.pathway_id,
                    version_id=episode.version_id,
                    org_unit_id=episode.org_unit_id,
                    responsible_clinician_id=episode.responsible_clinician_id,
                    status=episode.status,
                    started_on=started_on,
                    month=started_on.replace(day=1),
                    ended_on=local_date(episode.ended_at),
                    los_days=costing.los_days,
                    expected_los_days=costing.expected_los_days,
                    readmitted_30d=episode.readmitted_30d,
                    complication=episode.complication,
                    currency=settings.CURRENCY,
                    expected=costing.expected,
                    actual=costing.actual,
                    price_variance=costing.price_variance,
                    usage_variance=costing.usage_variance,
                    los_variance=costing.los_variance,
                    capacity_variance=costing.capacity_variance,
                    patient_variance=by_cause[EpisodeCost.Cause.PATIENT],
                    clinician_variance=by_cause[EpisodeCost.Cause.CLINICIAN],
                    system_variance=by_cause[EpisodeCost.Cause.SYSTEM],
                    community_variance=by_cause[EpisodeCost.Cause.COMMUNITY],
                    unexplained_variance=by_cause[EpisodeCost.Cause.UNEXPLAINED],
                    missing_rates=costing.missing_rates,
                    source_updated_at=episode.updated_at,
                    computed_at=now,
                )
            )
            for line in costing.lines:
                lines.append(
                    EpisodeCostLine(
                        episode_cost_id=episode.pk,
                        step=line.step,
                        event=line.event,
                        resource=line.resource,
                        salaried=line.salaried,
                        standard_quantity=line.standard_quantity,
                        actual_quantity=line.actual_quantity,
                        standard_rate=line.standard_rate,
                        standard_cost=line.standard_cost,
                        actual_cost=line.actual_cost,
                        price_variance=line.price_variance,
                        usage_variance=line.usage_variance,
                        los_variance=line.los_variance,
                        variance=line.variance,
                        cause=line.cause if line.total_variance else "",
                    )
                )
        EpisodeCost.objects.bulk_create(summaries)
        EpisodeCostLine.objects.bulk_create(lines, batch_size=2000)
