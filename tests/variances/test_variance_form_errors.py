"""Recording or explaining a variance: every problem in one round, summarised above the form."""

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import event, reason
from variances import services
from variances.detection import evaluate_episode
from variances.models import Variance


def summary(page: str) -> str:
    found = re.search(r'<div class="error-summary" role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert found, "no error summary on the page"
    return found.group(1)


def test_a_record_with_four_problems_shows_all_four_at_once(client, episode, alice):
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/variances/new/",
        {
            "step": "",  # an omission needs its step
            "variance_type": "omission",
            "reason": "",
            "valence": "",
            "rationale": "Theatre list overran",
            "action_taken": "Rebooked for tomorrow",
            "occurred_at": "2026-03-03T09:00",  # the clock stands at 2 March 08:00
        },
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert not Variance.objects.filter(episode=episode).exists()
    messages = {
        "step": "Choose the pathway step this departure concerns.",
        "reason": "Choose a reason.",
        "valence": "Say whether the departure was positive, negative or neutral for the patient.",
        "occurred_at": "This time is in the future.",
    }
    box = summary(page)
    assert "<h2>There is a problem</h2>" in box
    for name, message in messages.items():
        assert f'<p class="field-error" id="id_{name}_error">{message}</p>' in page  # by the field
        assert re.search(rf'<li><a href="#id_{name}">[^<]*: {re.escape(message)}</a></li>', box)  # in the summary
        assert f'id="id_{name}"' in page  # the link has somewhere to go (a radio group's fieldset too)
    assert box.count("<li>") == len(messages)
    assert page.index("There is a problem") < page.index('name="variance_type"')  # above the form

    # What was typed stays.
    assert '<option value="omission" selected>' in page
    assert ">\nTheatre list overran</textarea>" in page
    assert ">\nRebooked for tomorrow</textarea>" in page
    assert 'value="2026-03-03T09:00"' in page


def test_a_record_without_problems_has_no_summary_and_is_saved(client, episode, alice):
    login(client, alice)
    page = client.get(f"/variances/episodes/{episode.pk}/variances/new/").content.decode()
    assert "error-summary" not in page

    response = client.post(
        f"/variances/episodes/{episode.pk}/variances/new/",
        {
            "variance_type": "addition",
            "reason": reason().pk,
            "valence": "neutral",
            "occurred_at": "2026-03-02T08:00",  # when the episode started
        },
    )
    assert response.status_code == 302
    assert Variance.objects.get(episode=episode).variance_type == "addition"


@pytest.fixture
def late_surgery(episode, alice, clock):
    clock.move_to(T0 + timedelta(hours=31))
    event(episode, "ASSESS", at=T0 + timedelta(hours=1), actor=alice)
    event(episode, "SURGERY", at=T0 + timedelta(hours=30), actor=alice)
    evaluate_episode(episode.pk)
    return Variance.objects.get(episode=episode, variance_type="delay")


def test_explaining_without_a_reason_or_valence_lists_both_and_keeps_the_rationale(client, late_surgery, alice):
    login(client, alice)
    response = client.post(
        f"/variances/{late_surgery.pk}/explain/",
        {"reason": "", "valence": "", "cause": "system", "rationale": "Emergency took the list"},
    )
    page = response.content.decode()

    box = summary(page)
    assert '<a href="#id_reason">Reason: Choose a reason.</a>' in box
    assert '<a href="#id_valence">For the patient this was: Say whether the departure was positive' in box
    assert "Emergency took the list</textarea>" in page
    assert re.search(r'<input type="radio" name="cause" value="system"[^>]* checked', page)
    assert Variance.objects.get(pk=late_surgery.pk).status == Variance.Status.UNEXPLAINED


def test_the_service_names_every_problem_at_once(episode, alice):
    with pytest.raises(ValidationError) as raised:
        services.variance_record(
            episode=episode,
            step=None,
            variance_type="delay",
            cause="system",
            reason=None,
            valence="negative",
            occurred_at=T0 + timedelta(days=1),
            actor=alice,
        )
    assert set(raised.value.message_dict) == {"step", "reason", "occurred_at"}


def test_other_forms_share_the_summary(client, alice):
    login(client, alice)
    page = client.post("/accounts/password/", {}).content.decode()

    box = summary(page)
    assert '<a href="#id_old_password">' in box
    assert '<a href="#id_new_password1">' in box


def test_help_and_errors_are_tied_to_their_fields_with_unique_ids(client, alice):
    """Screen readers read a field's help and errors through aria-describedby: every id named there must exist, once."""
    login(client, alice)
    page = client.post("/accounts/password/", {"new_password1": "short", "new_password2": "other"}).content.decode()

    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "duplicate ids"
    described = {name for value in re.findall(r'aria-describedby="([^"]+)"', page) for name in value.split()}
    assert "id_new_password1_helptext" in described  # Django names the help text's id
    assert described <= set(ids)
