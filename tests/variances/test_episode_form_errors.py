"""Completing or exiting an episode and recording an event: every problem in one round, by its field and
in the summary above the form (as the variance form does, tests/variances/test_variance_form_errors.py)."""

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import reason, step
from variances import services
from variances.models import Episode, StepEvent, Variance


def summary(page: str) -> str:
    found = re.search(r'<div class="error-summary" role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert found, "no error summary on the page"
    return found.group(1)


def assert_all_shown(page: str, messages: dict[str, str]) -> None:
    """Each message by its field and, linked to that field, in the summary; nothing else in the summary."""
    box = summary(page)
    for name, message in messages.items():
        assert f'<p class="field-error" id="id_{name}_error">{message}</p>' in page, name  # by the field
        assert re.search(rf'<li><a href="#id_{name}">[^<]*: {re.escape(message)}</a></li>', box), name
        assert f'id="id_{name}"' in page  # the link has somewhere to go
    assert box.count("<li>") == len(messages)


# --- completing an episode --------------------------------------------------------------------


def test_completing_with_an_end_before_the_start_and_bad_outcomes_lists_all_at_once(client, episode, alice, clock):
    clock.move_to(T0 + timedelta(hours=52))
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/close/",
        {
            "ended_at": "2026-03-01T10:00",  # the episode started on 2 March 08:00
            "discharge_destination": "moon",
            "complication": "maybe",
            "readmitted_30d": "no",
        },
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert_all_shown(
        page,
        {
            "ended_at": "The end cannot be before the start of the episode.",
            "discharge_destination": "Select a valid choice. moon is not one of the available choices.",
            "complication": "Select a valid choice. maybe is not one of the available choices.",
        },
    )
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.ACTIVE
    # What was typed stays.
    assert 'value="2026-03-01T10:00"' in page
    assert re.search(r'<input type="radio" name="readmitted_30d" value="no"[^>]* checked', page)

    response = client.post(
        f"/variances/episodes/{episode.pk}/close/",
        {"ended_at": "2026-03-04T10:00", "discharge_destination": "usual-residence", "complication": "no"},
    )
    assert response.status_code == 302
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.COMPLETED


def test_completing_in_the_future_is_shown_with_the_other_problems(client, episode, alice, clock):
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/close/", {"ended_at": "2026-03-02T12:00", "complication": "maybe"}
    )
    assert_all_shown(
        response.content.decode(),
        {
            "ended_at": "This time is in the future.",
            "complication": "Select a valid choice. maybe is not one of the available choices.",
        },
    )
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.ACTIVE


# --- exiting the pathway ----------------------------------------------------------------------


def test_exiting_without_a_reason_and_with_an_end_before_the_start_lists_both(client, episode, alice, clock):
    clock.move_to(T0 + timedelta(hours=6))
    coded = reason("action-not-priority")
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/exit/",
        {"ended_at": "2026-03-01T13:00", "reason": "  ", "reason_code": coded.pk},
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert_all_shown(
        page,
        {
            "ended_at": "The end cannot be before the start of the episode.",
            "reason": "Say why the patient left the pathway.",
        },
    )
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.ACTIVE
    assert not Variance.objects.filter(episode=episode).exists()
    assert 'value="2026-03-01T13:00"' in page
    assert f'<option value="{coded.pk}" selected>' in page

    response = client.post(
        f"/variances/episodes/{episode.pk}/exit/",
        {"ended_at": "2026-03-02T13:00", "reason": "Septic; moved to ICU", "reason_code": coded.pk},
    )
    assert response.status_code == 302
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.EXITED


# --- recording an event -----------------------------------------------------------------------


def test_an_event_with_three_problems_shows_all_three_at_once(client, episode, alice, clock):
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/events/new/",
        {
            "step": "",  # "Not on the pathway", and no activity named
            "activity": "",
            "occurred_at": "2026-03-02T11:00",  # the clock stands at 2 March 08:00
            "performed_by": "P" * 151,
        },
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert_all_shown(
        page,
        {
            "activity": "Choose the pathway step, or name the activity if it is not on the pathway.",
            "occurred_at": "This time is in the future.",
            "performed_by": "Ensure this value has at most 150 characters (it has 151).",
        },
    )
    assert not StepEvent.objects.filter(episode=episode).exists()
    assert 'value="2026-03-02T11:00"' in page
    assert f'value="{"P" * 151}"' in page

    response = client.post(
        f"/variances/episodes/{episode.pk}/events/new/",
        {"step": step(episode.version, "ASSESS").pk, "occurred_at": "2026-03-02T08:00", "performed_by": "Pre-op"},
    )
    assert response.status_code == 302
    assert StepEvent.objects.get(episode=episode).step.code == "ASSESS"


def test_an_unplanned_activity_in_the_future_says_only_that(client, episode, alice, clock):
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/events/new/",
        {"step": "", "activity": "Blood transfusion", "occurred_at": "2026-03-02T11:00"},
    )
    page = response.content.decode()
    assert_all_shown(page, {"occurred_at": "This time is in the future."})
    assert 'value="Blood transfusion"' in page


# --- the services name every problem too (the API reports them with the same words) -----------


def test_the_services_name_every_problem_at_once(episode, alice, clock):
    clock.move_to(T0 + timedelta(hours=6))
    with pytest.raises(ValidationError) as raised:
        services.episode_exit(episode=episode, ended_at=T0 - timedelta(hours=1), reason=" ", actor=alice)
    assert raised.value.message_dict == {
        "reason": ["Say why the patient left the pathway."],
        "ended_at": ["The end cannot be before the start of the episode."],
    }

    with pytest.raises(ValidationError) as raised:
        services.event_record(
            episode=episode, step=None, activity="", occurred_at=T0 + timedelta(days=1), source="manual", actor=alice
        )
    assert raised.value.message_dict == {
        "occurred_at": ["This time is in the future."],
        "step": ["Choose the pathway step, or name the activity if it is not on the pathway."],
    }

    with pytest.raises(ValidationError) as raised:
        services.episode_close(episode=episode, ended_at=T0 - timedelta(minutes=1), actor=alice)
    assert raised.value.message_dict == {"ended_at": ["The end cannot be before the start of the episode."]}
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.ACTIVE
    assert not StepEvent.objects.filter(episode=episode).exists()


def test_an_ended_episode_is_refused_before_anything_else(episode, alice, clock):
    clock.move_to(T0 + timedelta(hours=6))
    services.episode_close(episode=episode, ended_at=T0 + timedelta(hours=5), actor=alice)
    with pytest.raises(ValidationError) as raised:
        services.episode_exit(episode=episode, ended_at=T0 - timedelta(hours=1), reason="", actor=alice)
    assert raised.value.messages == ["This episode is already completed."]
