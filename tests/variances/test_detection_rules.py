"""Each detection rule of DOMAIN.md section 3, on the KNEE pathway, with time travel.

KNEE windows (minutes after the anchor): ASSESS 0..240 after start; SURGERY 60..1440
after start, must follow ASSESS; MOBILISE 0..1440 after SURGERY, must follow SURGERY;
XRAY optional; STAY per day; DISCHARGE 2880..5760 after start, must follow MOBILISE.
"""

from datetime import timedelta

from tests.variances.conftest import T0
from tests.variances.factories import event
from variances import services
from variances.detection import EventFact, StepSpec, detect, evaluate_episode
from variances.models import Detection, Variance


def h(hours: float):
    return T0 + timedelta(hours=hours)


def found(episode):
    """Current (not withdrawn) variances as (type, step code or activity)."""
    return sorted(
        (v.variance_type, v.subject)
        for v in Variance.objects.current().filter(episode=episode).select_related("step", "detection__event")
    )


def record_plan_on_time(episode, alice):
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(3), actor=alice)
    event(episode, "MOBILISE", at=h(7), actor=alice)
    event(episode, "STAY", at=h(8), actor=alice)
    event(episode, "DISCHARGE", at=h(50), actor=alice)


def test_it_finds_nothing_when_every_step_is_done_on_time(episode, alice, clock):
    clock.move_to(h(50.5))
    record_plan_on_time(episode, alice)
    services.episode_close(episode=episode, ended_at=h(50.5), actor=alice)

    assert evaluate_episode(episode.pk) == {}
    assert found(episode) == []


def test_it_raises_a_delay_when_the_step_happens_after_its_window(episode, alice, clock):
    clock.move_to(h(31))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(30), actor=alice)

    assert evaluate_episode(episode.pk) == {"delay": 1}
    delay = Variance.objects.get(episode=episode, variance_type="delay")
    assert delay.step.code == "SURGERY"
    assert delay.status == Variance.Status.UNEXPLAINED
    assert delay.detection.minutes_outside == 6 * 60
    assert delay.detection.due_by == h(24)
    assert delay.occurred_at == h(30)


def test_it_raises_early_when_the_step_happens_before_its_window(episode, alice, clock):
    clock.move_to(h(41))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(3), actor=alice)
    event(episode, "MOBILISE", at=h(7), actor=alice)
    event(episode, "DISCHARGE", at=h(40), actor=alice)

    evaluate_episode(episode.pk)

    assert found(episode) == [("early", "Discharge home")]
    assert Detection.objects.get(episode=episode).minutes_outside == 8 * 60


def test_it_raises_an_omission_only_once_the_window_has_closed(episode, alice, clock):
    clock.move_to(h(3.9))
    assert evaluate_episode(episode.pk) == {}

    clock.move_to(h(4.1))
    evaluate_episode(episode.pk)

    # ASSESS was due by 4 h; SURGERY is due by 24 h, so it is not missing yet.
    assert found(episode) == [("omission", "Pre-operative assessment")]


def test_it_raises_omissions_for_every_mandatory_step_missing_when_the_episode_ends(episode, alice, clock):
    clock.move_to(h(10))
    event(episode, "ASSESS", at=h(1), actor=alice)
    services.episode_close(episode=episode, ended_at=h(10), actor=alice)

    evaluate_episode(episode.pk)

    # The optional X-ray is not an omission; MOBILISE's window was never known
    # (SURGERY never happened) but the episode ended without it.
    assert found(episode) == [
        ("omission", "Discharge home"),
        ("omission", "Mobilise on day of surgery"),
        ("omission", "Total knee replacement"),
        ("omission", "Ward stay"),
    ]
    critical = Variance.objects.filter(episode=episode, review_required=True).values_list("step__code", flat=True)
    assert sorted(critical) == ["MOBILISE", "SURGERY"]


def test_it_waits_for_the_anchor_step_before_judging_a_dependent_step(episode, alice, clock):
    clock.move_to(h(100))

    evaluate_episode(episode.pk)

    # Still active: SURGERY (due by 24 h) and DISCHARGE (by 96 h) are missing;
    # MOBILISE is anchored on SURGERY, which has not happened, so it is not yet due.
    codes = {v.step.code for v in Variance.objects.filter(episode=episode)}
    assert codes == {"ASSESS", "SURGERY", "DISCHARGE"}


def test_an_exited_episode_owes_only_the_steps_already_due_when_the_patient_left(episode, alice, clock):
    clock.move_to(h(5))
    services.episode_exit(episode=episode, ended_at=h(5), reason="Transferred to ICU", actor=alice)

    evaluate_episode(episode.pk)

    assert found(episode) == [("exit", "Left the pathway"), ("omission", "Pre-operative assessment")]


def test_it_raises_a_sequence_variance_when_a_step_precedes_one_it_must_follow(episode, alice, clock):
    clock.move_to(h(3.5))
    event(episode, "SURGERY", at=h(2), actor=alice)
    event(episode, "ASSESS", at=h(3), actor=alice)

    evaluate_episode(episode.pk)

    assert found(episode) == [("sequence", "Total knee replacement")]
    assert Detection.objects.get(episode=episode).key == "sequence:SURGERY:ASSESS"


def test_it_raises_one_addition_per_activity_not_on_the_pathway(episode, alice, clock):
    clock.move_to(h(6))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, activity="Blood transfusion", at=h(2), actor=alice)
    event(episode, activity="blood  Transfusion", at=h(5), actor=alice)
    event(episode, activity="Cardiology review", at=h(5.5), actor=alice)

    assert evaluate_episode(episode.pk) == {"addition": 2}
    assert found(episode) == [("addition", "Blood transfusion"), ("addition", "Cardiology review")]


def test_a_repeated_step_is_satisfied_by_its_first_event_and_is_not_a_variance(episode, alice, clock):
    clock.move_to(h(33))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "ASSESS", at=h(20), actor=alice)  # outside the window, but a repeat
    event(episode, "SURGERY", at=h(3), actor=alice)
    event(episode, "STAY", at=h(8), actor=alice)
    event(episode, "STAY", at=h(32), actor=alice)

    evaluate_episode(episode.pk)

    # Only MOBILISE, due by 27 h after surgery at 3 h, is missing; no repeat counts.
    assert found(episode) == [("omission", "Mobilise on day of surgery")]


def test_the_rules_are_a_pure_function_of_steps_events_and_now():
    steps = [StepSpec(id=1, code="A", window_min=0, window_max=60), StepSpec(id=2, code="B", must_follow=(1,))]
    events = [EventFact(10, 2, "", T0 + timedelta(minutes=5)), EventFact(11, 1, "", T0 + timedelta(minutes=90))]

    findings = detect(steps, started_at=T0, ended_at=None, status="active", events=events, now=T0 + timedelta(hours=2))

    assert [(f.key, f.minutes_outside) for f in findings] == [("delay:A", 30), ("sequence:B:A", 85)]
