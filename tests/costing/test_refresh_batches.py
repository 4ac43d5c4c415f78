"""A refresh walks the stale summaries batch by batch, and counts them only when there is more than one batch.

A report refreshes its scope first, and usually finds few stale summaries or none:
then the first batch is the whole run, and counting them again would be a second
pass over the scope for nothing.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from costing.models import EpisodeCost
from costing.summaries import closed_episodes, episode_costs_refresh, stale
from tests.costing.factories import generate_dataset, two_pathways

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed(org, alice) -> int:
    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice], n=40, seed=11)
    return closed_episodes().count()


def refresh(batch_size: int) -> tuple[int, list[tuple[int, int]], list[str]]:
    progress: list[tuple[int, int]] = []
    with CaptureQueriesContext(connection) as queries:
        done = episode_costs_refresh(batch_size=batch_size, on_batch=lambda d, t: progress.append((d, t)))
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(")]
    return done, progress, counts


def test_a_run_that_fits_in_one_batch_does_not_count_the_stale_summaries(closed):
    assert closed > 20

    done, progress, counts = refresh(batch_size=closed + 1)

    assert done == closed == EpisodeCost.objects.count()
    assert progress == [(closed, closed)]
    assert counts == []
    assert not stale(closed_episodes()).exists()


def test_a_run_of_several_batches_counts_them_once_and_reports_each_batch(closed):
    size = 10

    done, progress, counts = refresh(batch_size=size)

    batches = -(-closed // size)
    assert done == closed == EpisodeCost.objects.count()
    assert progress == [(min(size * i, closed), closed) for i in range(1, batches + 1)]
    assert len(counts) == 1
    assert not stale(closed_episodes()).exists()


def test_a_full_first_batch_is_counted_in_case_more_follow(closed):
    done, progress, counts = refresh(batch_size=closed)

    assert done == closed
    assert progress == [(closed, closed)]
    assert len(counts) == 1


def test_nothing_stale_means_no_count_and_no_progress(closed):
    episode_costs_refresh()

    done, progress, counts = refresh(batch_size=closed + 1)

    assert (done, progress, counts) == (0, [], [])
