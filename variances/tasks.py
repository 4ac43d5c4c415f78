"""Background detection. Tasks take ids and are idempotent (detection keys are unique)."""

from datetime import timedelta

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from .detection import evaluate_episode, evaluate_episodes
from .models import Episode


@shared_task(name="variances.detect_episode")
def detect_episode(episode_id: int) -> dict:
    """Queued on commit after each event, start, close or exit of an episode."""
    return dict(evaluate_episode(episode_id))


# Ended episodes changed this recently are detected again by the beat job: their own
# detection, queued on commit, may have been lost with the broker (an outage this long).
RECHECK_ENDED = timedelta(hours=2)


@shared_task(name="variances.detect_all_active")
def detect_all_active() -> dict:
    """Beat, every 15 minutes: raise omissions whose window has closed since the last event.

    Also the sweeper for ``detect_episode`` messages lost while the broker was down:
    every active episode is evaluated anyway, and so is every episode that ended or
    changed in the last ``RECHECK_ENDED`` (detection is idempotent).
    """
    now = timezone.now()
    ids = list(
        Episode.objects.filter(Q(status=Episode.Status.ACTIVE) | Q(updated_at__gte=now - RECHECK_ENDED)).values_list(
            "pk", flat=True
        )
    )
    return dict(evaluate_episodes(ids, now=now))


# The browser import's task lives with its job code (variances/import_jobs.py);
# importing it here registers it with the worker, which loads this module.
from .import_jobs import import_events_task, sweep_import_jobs  # noqa: E402, F401
