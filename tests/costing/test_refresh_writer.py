"""A refresh of many summaries on PostgreSQL writes each batch on a second connection while it costs the next.

Whether the batches are written there or in the refresh's own transactions, the
stored summaries and lines must be the same; a failed write must stop the run
with its error and keep the batches already committed.
"""

import threading

import pytest
from django.db import connection, transaction

import costing.summaries
from costing.models import EpisodeCost, EpisodeCostLine
from costing.summaries import closed_episodes, episode_costs_refresh
from tests.conftest import require
from tests.costing.factories import generate_dataset, two_pathways

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITER = "cost-summary-writer"
LOCKS_HELD = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"


@pytest.fixture
def episodes(org, alice):
    require(connection.vendor == "postgresql", "the writer's second connection needs PostgreSQL")
    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice], n=120, seed=5)


def stored() -> tuple[list, list]:
    summaries = list(
        EpisodeCost.objects.order_by("episode_id").values_list(
            *(f.attname for f in EpisodeCost._meta.concrete_fields if f.name != "computed_at")
        )
    )
    lines = sorted(
        EpisodeCostLine.objects.values_list(
            *(f.attname for f in EpisodeCostLine._meta.concrete_fields if f.name != "id")
        ),
        key=repr,
    )
    return summaries, lines


def writer_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name == WRITER}


def test_the_writer_stores_what_the_refresh_stores_in_its_own_transactions(episodes):
    with transaction.atomic():  # inside a transaction: every batch read and written on this connection
        in_one = episode_costs_refresh(batch_size=25)
        expected = stored()
        transaction.set_rollback(True)
    assert EpisodeCost.objects.count() == 0 and in_one > 100

    seen: set[str] = set()
    locked = []

    def on_batch(done, total):
        seen.update(writer_threads())
        with connection.cursor() as cursor:  # the run holds the refresh lock throughout: a second one waits
            cursor.execute(LOCKS_HELD)
            locked.append(cursor.fetchone()[0])

    refreshed = episode_costs_refresh(batch_size=25, on_batch=on_batch)

    assert seen == {WRITER}  # the batches went through the writer
    assert locked and set(locked) == {1}
    assert refreshed == in_one
    assert stored() == expected
    assert not writer_threads()  # and it has finished
    with connection.cursor() as cursor:
        cursor.execute(LOCKS_HELD)
        assert cursor.fetchone()[0] == 0  # and the lock is released


def test_a_failed_write_stops_the_run_and_keeps_the_batches_already_written(episodes, monkeypatch):
    copies = []
    copy_buffer = costing.summaries.copy_buffer

    def failing_third_copy(sql, buffer):
        copies.append(sql)
        if len(copies) == 3:  # the second batch's summaries
            raise RuntimeError("disk full")
        copy_buffer(sql, buffer)

    monkeypatch.setattr(costing.summaries, "copy_buffer", failing_third_copy)

    with pytest.raises(RuntimeError, match="disk full"):
        episode_costs_refresh(batch_size=25)

    # The first batch (the 25 lowest ids) is committed with its lines; the second is rolled back whole.
    first = list(closed_episodes().order_by("pk").values_list("pk", flat=True)[:25])
    assert list(EpisodeCost.objects.order_by("episode_id").values_list("episode_id", flat=True)) == first
    assert set(EpisodeCostLine.objects.values_list("episode_cost_id", flat=True)) == set(first)
    assert not writer_threads()
    with connection.cursor() as cursor:
        cursor.execute(LOCKS_HELD)
        assert cursor.fetchone()[0] == 0
