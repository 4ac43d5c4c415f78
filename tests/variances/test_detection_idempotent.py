"""Detection is idempotent, bulk, runs on commit and by beat, and never deletes."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.variances.conftest import T0
from tests.variances.factories import event, reason, start
from variances import services, tasks
from variances.detection import EventFact, NewEpisode, evaluate_episode, evaluate_episodes, evaluate_new_episodes
from variances.models import Detection, Episode, StepEvent, Variance, VarianceRevision


def h(hours: float):
    return T0 + timedelta(hours=hours)


def test_it_creates_nothing_when_run_again(episode, alice, clock):
    clock.move_to(h(31))
    event(episode, "SURGERY", at=h(30), actor=alice)

    first = evaluate_episode(episode.pk)
    second = evaluate_episode(episode.pk)
    evaluate_episodes([episode.pk, episode.pk])

    assert first == {"omission": 1, "delay": 1}
    assert second == {}
    assert Detection.objects.filter(episode=episode).count() == 2
    assert Variance.objects.filter(episode=episode).count() == 2
    assert VarianceRevision.objects.filter(variance__episode=episode).count() == 2


def test_the_bulk_path_uses_the_same_number_of_queries_for_many_episodes(knee, org, alice, clock):
    clock.move_to(h(48))

    def make(n, prefix):
        ids = []
        for i in range(n):
            ep = start(knee, org["ORTHO"], alice, ref=f"{prefix}-{i:04d}X", started_at=h(0))
            event(ep, "ASSESS", at=h(10), actor=alice)
            event(ep, activity="Blood transfusion", at=h(11), actor=alice)
            ids.append(ep.pk)
        return ids

    few, many = make(2, "PTA"), make(8, "PTB")
    with CaptureQueriesContext(connection) as q_few:
        created_few = evaluate_episodes(few)
    with CaptureQueriesContext(connection) as q_many:
        created_many = evaluate_episodes(many)

    assert len(q_many) == len(q_few)
    # Per episode: ASSESS late, SURGERY missing (due by 24 h), one addition.
    assert created_few == {"delay": 2, "omission": 2, "addition": 2}
    assert created_many == {"delay": 8, "omission": 8, "addition": 8}


def test_each_detected_variance_starts_with_a_revision_holding_its_full_state(episode, alice, clock):
    clock.move_to(h(31))
    event(episode, "SURGERY", at=h(30), actor=alice)
    evaluate_episode(episode.pk)

    for variance in Variance.objects.filter(episode=episode):
        first = variance.revisions.get()
        assert first.number == 1 and first.reason == "detected" and first.changed_by is None
        assert first.snapshot == services.variance_snapshot(variance)


def test_a_late_event_withdraws_the_unexplained_omission_instead_of_deleting_it(episode, alice, clock):
    clock.move_to(h(5))
    evaluate_episode(episode.pk)
    omission = Variance.objects.get(episode=episode, variance_type="omission")

    event(episode, "ASSESS", at=h(4.5), actor=alice)
    evaluate_episode(episode.pk)

    omission.refresh_from_db()
    assert omission.status == Variance.Status.WITHDRAWN
    assert omission.withdrawn_reason == "superseded: step recorded late at 2026-03-02 12:30"
    assert [r.reason for r in omission.revisions.order_by("number")] == [
        "detected",
        "superseded: step recorded late at 2026-03-02 12:30",
    ]
    assert Detection.objects.filter(episode=episode, key="omission:ASSESS").exists()
    assert Variance.objects.get(episode=episode, variance_type="delay").step.code == "ASSESS"


def test_a_documented_omission_is_kept_when_the_step_is_recorded_later(episode, alice, clock):
    clock.move_to(h(5))
    evaluate_episode(episode.pk)
    omission = Variance.objects.get(episode=episode, variance_type="omission")
    services.variance_explain(
        variance=omission, cause="system", reason=reason(), valence="negative", rationale="No nurse", actor=alice
    )

    event(episode, "ASSESS", at=h(4.5), actor=alice)
    evaluate_episode(episode.pk)

    omission.refresh_from_db()
    assert omission.status == Variance.Status.DOCUMENTED
    assert omission.rationale == "No nurse"


def test_explaining_a_detected_variance_keeps_its_detection(episode, alice, clock):
    clock.move_to(h(5))
    evaluate_episode(episode.pk)
    variance = Variance.objects.get(episode=episode)
    detection = variance.detection

    services.variance_explain(
        variance=variance, cause="patient", reason=reason("patient-contraindication"), valence="neutral", actor=alice
    )

    variance.refresh_from_db()
    assert variance.status == Variance.Status.DOCUMENTED
    assert variance.detection == detection
    assert Detection.objects.filter(pk=detection.pk).exists()


def test_recording_an_event_queues_detection_once_the_transaction_commits(
    episode, alice, clock, django_capture_on_commit_callbacks
):
    clock.move_to(h(31))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event(episode, "ASSESS", at=h(1), actor=alice)
        event(episode, "SURGERY", at=h(30), actor=alice)
    assert not Variance.objects.filter(episode=episode).exists()  # nothing before commit

    for callback in callbacks:
        callback()

    assert list(Variance.objects.filter(episode=episode).values_list("variance_type", flat=True)) == ["delay"]


def test_the_beat_job_raises_omissions_whose_window_closed_without_any_event(episode, knee, org, dora, alice, clock):
    clock.move_to(h(1))
    closed = start(knee, org["ORTHO"], alice, ref="PT-0002B", started_at=h(0))
    services.episode_close(episode=closed, ended_at=h(1), actor=alice)
    clock.move_to(h(5))

    result = tasks.detect_all_active.delay().get()

    assert result == {"omission": 1}
    assert Variance.objects.get().episode == episode
    assert not Variance.objects.filter(episode=closed).exists()  # closed: detected on close, not by beat
    assert Episode.objects.get(pk=episode.pk).row_version > 1


def test_new_episodes_judged_from_the_facts_in_hand_get_the_same_rows_as_when_read_back(knee, org, alice, clock):
    # The import judges the episodes it has just written without reading them back
    # (evaluate_new_episodes); what it stores must be what evaluate_episodes stores.
    clock.move_to(h(48))

    def make(ref):
        ep = start(knee, org["ORTHO"], alice, ref=ref, started_at=h(0))
        event(ep, "ASSESS", at=h(10.25), actor=alice)
        event(ep, activity="Blood transfusion", at=h(11), actor=alice)
        event(ep, activity="Blood  TRANSFUSION", at=h(12), actor=alice)  # the same addition again
        return Episode.objects.get(pk=ep.pk)

    read_back, in_hand = make("PTR-0001X"), make("PTH-0001X")
    facts = [
        EventFact(e.pk, e.step_id, e.activity, e.occurred_at)
        for e in StepEvent.objects.filter(episode=in_hand).order_by("occurred_at", "pk")
    ]
    created_read_back = evaluate_episodes([read_back.pk])
    created_in_hand = evaluate_new_episodes(
        [
            NewEpisode(
                id=in_hand.pk,
                version_id=in_hand.version_id,
                started_at=in_hand.started_at,
                ended_at=in_hand.ended_at,
                status=in_hand.status,
                patient_ref=in_hand.patient_ref,
                events=facts,
            )
        ],
        now=timezone.now(),
    )

    assert created_in_hand == created_read_back == {"delay": 1, "omission": 1, "addition": 1}

    def stored(episode):
        rows = []
        for variance in Variance.objects.filter(episode=episode).select_related("detection").order_by("variance_type"):
            detection = variance.detection
            revision = variance.revisions.get()
            snapshot = services.variance_snapshot(variance)
            assert revision.snapshot == snapshot  # revision 1 holds the variance exactly as stored
            assert (revision.number, revision.reason, revision.changed_by_id) == (1, "detected", None)
            rows.append(
                (
                    {k: v for k, v in snapshot.items() if k not in ("episode_id", "detection_id")},
                    detection.key,
                    detection.step_id,
                    detection.event_id and StepEvent.objects.get(pk=detection.event_id).occurred_at,
                    (detection.due_from, detection.due_by, detection.happened_at, detection.minutes_outside),
                )
            )
        return rows

    assert stored(in_hand) == stored(read_back)
    assert stored(in_hand)[0][0]["variance_type"] == "addition"
    read_back.refresh_from_db()
    in_hand.refresh_from_db()
    assert in_hand.row_version == read_back.row_version
