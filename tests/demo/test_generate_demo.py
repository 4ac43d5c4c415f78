"""``manage.py generate_demo``: deterministic for a seed, and its data keeps the product's invariants."""

import io
from collections import Counter
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count, Max

from demo import generate
from tests.conftest import require
from variances.detection import evaluate_episodes
from variances.models import Detection, Episode, EventQuantity, StepEvent, Variance, VarianceRevision
from variances.services import variance_snapshot

UNTIL = date(2025, 6, 1)
CUTOFF = datetime.combine(UNTIL, time.min, tzinfo=ZoneInfo("Europe/London"))


def run(episodes: int, seed: int, years: int = 2) -> str:
    out = io.StringIO()
    call_command("generate_demo", episodes=episodes, seed=seed, until=UNTIL, years=years, batch_events=2000, stdout=out)
    return out.getvalue()


def fingerprint() -> list[tuple]:
    """Everything generated, without database ids (sequences are not rolled back)."""
    events = {}
    for episode_id, code, activity, occurred, source in StepEvent.objects.order_by("occurred_at", "id").values_list(
        "episode_id", "step__code", "activity", "occurred_at", "source"
    ):
        events.setdefault(episode_id, []).append((code, activity, occurred, source))
    variances = {}
    for episode_id, kind, status, reason, revision in Variance.objects.order_by(
        "occurred_at", "variance_type"
    ).values_list("episode_id", "variance_type", "status", "reason__code", "revision"):
        variances.setdefault(episode_id, []).append((kind, status, reason, revision))
    return [
        (
            e.patient_ref,
            e.version.pathway.code,
            e.started_at,
            e.ended_at,
            e.status,
            e.readmitted_30d,
            e.responsible_clinician.username if e.responsible_clinician else None,
            tuple(events.get(e.pk, ())),
            tuple(variances.get(e.pk, ())),
        )  # fmt: skip
        for e in Episode.objects.select_related("version__pathway", "responsible_clinician").order_by("patient_ref")
    ]


@pytest.mark.slow
@pytest.mark.django_db
def test_it_generates_the_same_data_for_the_same_seed_and_other_data_for_another():
    with transaction.atomic():
        run(150, seed=7)
        first = fingerprint()
        transaction.set_rollback(True)
    run(150, seed=7)
    again = fingerprint()
    with transaction.atomic():
        run(150, seed=8)
        other = [row for row in fingerprint() if row[0].startswith("SYN8-")]
        transaction.set_rollback(True)

    assert len(first) == 150
    assert again == first
    assert [row[1:] for row in other] != [row[1:] for row in first]


@pytest.fixture
def generated(db):
    return run(900, seed=3)


@pytest.mark.slow
def test_it_generates_realistic_episodes_about_a_third_departing(generated):
    assert "Episodes: 900 (" in generated
    assert f"Events: {StepEvent.objects.count():,} (" in generated
    assert f"Variances: {Variance.objects.count():,} in " in generated

    episodes = Episode.objects.all()
    assert set(episodes.values_list("version__pathway__code", flat=True)) == {"HIP-FRACTURE", "TKR", "SEPSIS-ED"}
    # Elective knees are admitted on weekday mornings.
    knees = [
        s.astimezone(CUTOFF.tzinfo)
        for s in episodes.filter(version__pathway__code="TKR").values_list("started_at", flat=True)
    ]
    assert not [s for s in knees if s.weekday() == 6] and sum(s.weekday() < 5 for s in knees) >= 0.95 * len(knees)
    assert all(7 <= s.hour <= 14 for s in knees)
    # Both hip fracture versions carry episodes: the retired one the older ones.
    assert episodes.filter(version__pathway__code="HIP-FRACTURE").values("version").distinct().count() == 2
    starts = list(episodes.values_list("started_at", flat=True))
    assert min(starts) >= CUTOFF.replace(year=2023) and max(starts) < CUTOFF
    months = Counter(s.astimezone(CUTOFF.tzinfo).month for s in starts)
    # Emergency demand peaks in winter.
    assert months[12] + months[1] + months[2] > 1.2 * (months[6] + months[7] + months[8])
    statuses = Counter(episodes.values_list("status", flat=True))
    assert statuses["completed"] > 0.8 * 900 and statuses["exited"] > 0 and statuses["active"] > 0

    departing = episodes.filter(variances__isnull=False).distinct().count()
    assert 0.25 <= departing / 900 <= 0.45
    assert {"delay", "omission", "addition", "exit"} <= set(Variance.objects.values_list("variance_type", flat=True))
    # Reasons differ per step, not one reason for everything.
    reasons = (
        Variance.objects.filter(reason__isnull=False).values("step__code").annotate(n=Count("reason", distinct=True))
    )
    assert sum(1 for row in reasons if row["n"] >= 2) >= 3
    assert Counter(Variance.objects.values_list("status", flat=True)).keys() >= {
        "unexplained",
        "documented",
        "reviewed",
    }
    assert EventQuantity.objects.exists()


@pytest.mark.slow
def test_it_keeps_the_invariants_the_services_keep(generated):
    # What is marked detected is exactly what the product's own rules find at the cutoff.
    assert evaluate_episodes(list(Episode.objects.values_list("pk", flat=True)), now=CUTOFF) == Counter()
    assert not Variance.objects.filter(status="withdrawn").exists()  # nothing was superseded either

    # Every detection has its variance; every variance its revisions 1..n, the last one its current state.
    assert Detection.objects.count() > 0
    assert not Detection.objects.filter(variance__isnull=True).exists()
    revisions = dict(VarianceRevision.objects.values("variance").annotate(n=Count("pk")).values_list("variance", "n"))
    for variance in Variance.objects.prefetch_related("revisions"):
        numbers = sorted(r.number for r in variance.revisions.all())
        assert numbers == list(range(1, variance.revision + 1)) and revisions[variance.pk] == variance.revision
        latest = next(r for r in variance.revisions.all() if r.number == variance.revision)
        assert latest.snapshot == variance_snapshot(variance)

    # Each episode's updated_at is its last change.
    last_event = dict(StepEvent.objects.values("episode").annotate(at=Max("recorded_at")).values_list("episode", "at"))
    last_revision = dict(
        VarianceRevision.objects.values("variance__episode")
        .annotate(at=Max("changed_at"))
        .values_list("variance__episode", "at")
    )
    for episode in Episode.objects.all():
        assert episode.created_at <= episode.updated_at <= CUTOFF
        assert episode.updated_at >= last_event.get(episode.pk, episode.created_at)
        assert episode.updated_at >= last_revision.get(episode.pk, episode.created_at)
        assert (episode.ended_at is None) == (episode.status == "active")


@pytest.mark.django_db
def test_it_refuses_to_generate_twice_for_a_seed():
    run(20, seed=3)
    with pytest.raises(CommandError, match="Episodes for seed 3 already exist"):
        run(10, seed=3)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_checks_every_reference_of_a_batch_it_wrote_without_per_row_triggers():
    require(connection.vendor == "postgresql", "COPY and per-batch reference checks need PostgreSQL (DATABASE_URL)")
    run(200, seed=11)
    writer = generate._Writer()
    assert writer.batch_checks  # the test database role is a superuser, as in CI
    assert Episode.objects.count() == 200

    # A row that refers to a missing episode is caught before the batch commits.
    event_id = writer.ids(generate.EVENTS, 1)[0]
    line = f"{event_id}\t999999999\t\\N\tOrphan\t2025-01-01 10:00:00\t2025-01-01 10:00:00\t\\N\t\tapi\t\n"
    with pytest.raises(generate.GenerationError, match="variances_stepevent refer to missing rows \\(episode_id\\)"):
        writer.store(([], [line], [], [], [], []), {"variances_stepevent": ("id", event_id, event_id)})
    assert not StepEvent.objects.filter(pk=event_id).exists()
