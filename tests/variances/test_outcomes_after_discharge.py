"""Recording outcomes after discharge (services.episode_record_outcomes): a readmission within 30 days is known
only after the episode ended, and complications are often coded later."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from tests.variances.conftest import T0
from variances import services
from variances.models import Episode


def h(hours: float):
    return T0 + timedelta(hours=hours)


@pytest.fixture
def discharged(episode, alice, clock):
    """Completed on day 3 with no complication and the readmission not known yet; the clock then two weeks on."""
    clock.move_to(h(52))
    services.episode_close(
        episode=episode, ended_at=h(50), discharge_destination="usual-residence", complication=False, actor=alice
    )
    clock.move_to(h(50) + timedelta(days=14))
    return Episode.objects.get(pk=episode.pk)


def outcome_events():
    return list(AuditEvent.objects.filter(action="episode.outcomes").order_by("id"))


def test_it_records_a_readmission_after_discharge_with_who_when_and_before_after(discharged, bob):
    episode = services.episode_record_outcomes(episode=discharged, readmitted_30d=True, actor=bob)

    stored = Episode.objects.get(pk=discharged.pk)
    assert (stored.readmitted_30d, stored.complication, stored.status) == (True, False, "completed")
    assert stored.row_version == discharged.row_version + 1
    assert stored.updated_at == h(50) + timedelta(days=14)  # report summaries of the episode are now stale
    assert episode.outcomes_changed == {"readmitted_30d": True}
    [event] = outcome_events()
    assert (event.actor_name, event.object_id, event.episode_ref) == ("bob", str(stored.pk), "PT-0001A")
    assert event.detail == {
        "before": {"readmitted_30d": None},
        "after": {"readmitted_30d": True},
        "row_version": stored.row_version,
    }


def test_only_the_outcomes_given_change(discharged, alice):
    services.episode_record_outcomes(episode=discharged, complication=True, actor=alice)

    stored = Episode.objects.get(pk=discharged.pk)
    assert (stored.readmitted_30d, stored.complication, stored.discharge_destination) == (
        None,
        True,
        "usual-residence",
    )
    assert outcome_events()[0].detail["after"] == {"complication": True}


def test_a_yes_can_be_corrected_back_to_no_or_to_not_known_and_each_correction_is_audited(discharged, alice, bob):
    services.episode_record_outcomes(episode=discharged, readmitted_30d=True, actor=alice)
    services.episode_record_outcomes(episode=discharged, readmitted_30d=False, actor=bob)  # the wrong patient
    services.episode_record_outcomes(episode=discharged, readmitted_30d=None, complication=None, actor=bob)

    stored = Episode.objects.get(pk=discharged.pk)
    assert (stored.readmitted_30d, stored.complication) == (None, None)
    assert stored.row_version == discharged.row_version + 3
    assert [(e.actor_name, e.detail["before"], e.detail["after"]) for e in outcome_events()] == [
        ("alice", {"readmitted_30d": None}, {"readmitted_30d": True}),
        ("bob", {"readmitted_30d": True}, {"readmitted_30d": False}),
        ("bob", {"readmitted_30d": False, "complication": False}, {"readmitted_30d": None, "complication": None}),
    ]


def test_the_values_already_recorded_change_nothing_and_leave_no_audit_event(discharged, alice):
    episode = services.episode_record_outcomes(episode=discharged, readmitted_30d=None, complication=False, actor=alice)

    stored = Episode.objects.get(pk=discharged.pk)
    assert episode.outcomes_changed == {}
    assert (stored.row_version, stored.updated_at) == (discharged.row_version, discharged.updated_at)
    assert outcome_events() == []


def test_an_active_episode_is_closed_first(episode, alice, clock):
    with pytest.raises(ValidationError) as raised:
        services.episode_record_outcomes(episode=episode, readmitted_30d=True, actor=alice)

    assert raised.value.messages == [services.OUTCOMES_OF_ACTIVE]
    assert "complete it (or take the patient off the pathway) first" in services.OUTCOMES_OF_ACTIVE
    stored = Episode.objects.get(pk=episode.pk)
    assert (stored.readmitted_30d, stored.row_version) == (None, episode.row_version)
    assert outcome_events() == []


def test_an_exited_episode_takes_its_outcomes_too(episode, alice, clock):
    clock.move_to(h(6))
    services.episode_exit(episode=episode, ended_at=h(5), reason="Septic; moved to ICU", actor=alice)

    services.episode_record_outcomes(episode=episode, complication=True, actor=alice)

    assert Episode.objects.get(pk=episode.pk).complication is True


def test_a_stale_revision_is_refused_and_nothing_changes(discharged, alice, bob):
    read = discharged.row_version
    services.episode_record_outcomes(episode=discharged, complication=True, actor=bob, expected_revision=read)

    with pytest.raises(services.StaleRevisionError) as raised:
        services.episode_record_outcomes(episode=discharged, complication=False, actor=alice, expected_revision=read)

    assert str(raised.value) == (
        f"This episode was changed by someone else (now revision {read + 1}, you edited revision {read}). "
        "Reload it and make your change again."
    )
    assert Episode.objects.get(pk=discharged.pk).complication is True
    assert [e.actor_name for e in outcome_events()] == ["bob"]


def test_a_change_at_the_same_instant_as_the_last_still_moves_updated_at_on(discharged, alice):
    """Reports recompute a summary computed before the episode's updated_at: it must move on, whatever the clock."""
    services.episode_record_outcomes(episode=discharged, readmitted_30d=True, actor=alice)
    first = Episode.objects.get(pk=discharged.pk).updated_at

    services.episode_record_outcomes(episode=discharged, readmitted_30d=False, actor=alice)  # the clock stands still

    assert Episode.objects.get(pk=discharged.pk).updated_at > first


@pytest.mark.parametrize("value", [1, "yes", "true"])
def test_an_outcome_is_yes_no_or_not_known_only(discharged, alice, value):
    with pytest.raises(ValidationError) as raised:
        services.episode_record_outcomes(episode=discharged, readmitted_30d=value, actor=alice)

    assert raised.value.message_dict == {"readmitted_30d": ["Give yes, no or not known (None)."]}
    assert Episode.objects.get(pk=discharged.pk).readmitted_30d is None
