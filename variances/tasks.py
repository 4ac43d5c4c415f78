"""Background detection. Tasks take ids and are idempotent (detection keys are unique)."""

from celery import shared_task
from django.utils import timezone

from .detection import evaluate_episode, evaluate_episodes
from .models import Episode


@shared_task(name="variances.detect_episode")
def detect_episode(episode_id: int) -> dict:
    """Queued on commit after each event, start, close or exit of an episode."""
    return dict(evaluate_episode(episode_id))


@shared_task(name="variances.detect_all_active")
def detect_all_active() -> dict:
    """Beat, every 15 minutes: raise omissions whose window has closed since the last event."""
    ids = list(Episode.objects.active().values_list("pk", flat=True))
    return dict(evaluate_episodes(ids, now=timezone.now()))


# The browser import's task lives with its job code (variances/import_jobs.py);
# importing it here registers it with the worker, which loads this module.
from .import_jobs import import_events_task  # noqa: E402, F401
