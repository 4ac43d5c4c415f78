"""What clinicians type about care (rationale, action taken, comments, reasons) holds no NHS numbers or
e-mail addresses: the forms say so by the field and keep the text, the services name the input."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils.html import escape

from accounts.privacy import EMAIL_FOUND, NHS_NUMBER_FOUND
from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import event, reason, routine_delay, step
from variances import services
from variances.detection import evaluate_episode
from variances.models import Episode, StepEvent, Variance

NHS_TEXT = "Mrs Smith NHS 943 476 5919 refused surgery"
EMAIL_TEXT = "Rang her daughter, jane.doe@example.com"


def test_the_record_form_shows_each_error_by_its_field_and_keeps_what_was_typed(client, episode, alice):
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/variances/new/",
        {
            "variance_type": "addition",
            "reason": reason().pk,
            "valence": "neutral",
            "rationale": NHS_TEXT,
            "action_taken": EMAIL_TEXT,
            "occurred_at": "2026-03-02T08:00",
        },
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert f'<p class="field-error" id="id_rationale_error">{escape(NHS_NUMBER_FOUND)}</p>' in page
    assert f'<p class="field-error" id="id_action_taken_error">{escape(EMAIL_FOUND)}</p>' in page
    assert f'<a href="#id_rationale">Rationale: {escape(NHS_NUMBER_FOUND)}</a>' in page  # in the summary
    assert f">\n{NHS_TEXT}</textarea>" in page  # kept, to be corrected rather than typed again
    assert f">\n{EMAIL_TEXT}</textarea>" in page
    assert not Variance.objects.filter(episode=episode).exists()


def test_the_explain_form_refuses_an_identifier_and_keeps_the_rationale(client, episode, alice, clock):
    clock.move_to(T0 + timedelta(hours=31))
    event(episode, "ASSESS", at=T0 + timedelta(hours=1), actor=alice)
    event(episode, "SURGERY", at=T0 + timedelta(hours=30), actor=alice)
    evaluate_episode(episode.pk)
    detected = Variance.objects.get(episode=episode, variance_type="delay")
    login(client, alice)

    response = client.post(
        f"/variances/{detected.pk}/explain/",
        {"reason": reason().pk, "valence": "negative", "cause": "system", "rationale": NHS_TEXT},
    )
    page = response.content.decode()

    assert f'<p class="field-error" id="id_rationale_error">{escape(NHS_NUMBER_FOUND)}</p>' in page
    assert f"{NHS_TEXT}</textarea>" in page
    detected.refresh_from_db()
    assert (detected.status, detected.rationale) == (Variance.Status.UNEXPLAINED, "")


def _raised(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        call()
    return raised.value.message_dict


def test_each_service_names_the_input_that_holds_an_identifier_and_writes_nothing(episode, alice, bob):
    variance = routine_delay(episode, alice, at=T0)

    assert _raised(
        lambda: services.variance_amend(
            variance=variance, changes={"action_taken": EMAIL_TEXT}, reason="Added what was done", actor=alice
        )
    ) == {"action_taken": [EMAIL_FOUND]}
    assert _raised(
        lambda: services.variance_amend(variance=variance, changes={"cause": "patient"}, reason=NHS_TEXT, actor=alice)
    ) == {"amend_reason": [NHS_NUMBER_FOUND]}
    assert _raised(lambda: services.variance_withdraw(variance=variance, reason=NHS_TEXT, actor=alice)) == {
        "withdraw_reason": [NHS_NUMBER_FOUND]
    }
    assert _raised(
        lambda: services.variance_review(
            variance=variance, justified=False, avoidable=True, comment=NHS_TEXT, actor=bob
        )
    ) == {"comment": [NHS_NUMBER_FOUND]}
    assert _raised(
        lambda: services.event_record(
            episode=episode, activity=f"Transfusion for {NHS_TEXT}", occurred_at=T0, source="manual", actor=alice
        )
    ) == {"activity": [NHS_NUMBER_FOUND]}
    assert _raised(lambda: services.episode_exit(episode=episode, ended_at=T0, reason=NHS_TEXT, actor=alice)) == {
        "reason": [NHS_NUMBER_FOUND]
    }

    variance.refresh_from_db()
    assert (variance.status, variance.revision, variance.action_taken) == (Variance.Status.DOCUMENTED, 1, "")
    assert variance.revisions.count() == 1
    assert not StepEvent.objects.filter(episode=episode).exists()
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.ACTIVE


def test_text_stored_before_the_screening_does_not_block_a_review_or_a_withdrawal(episode, alice, bob):
    variance = routine_delay(episode, alice, at=T0)
    Variance.objects.filter(pk=variance.pk).update(rationale=NHS_TEXT)  # as an earlier version stored it

    services.variance_review(variance=variance, justified=True, avoidable=False, comment="Fair", actor=bob)
    services.variance_amend(
        variance=variance, changes={"step": step(episode.version, "SURGERY")}, reason="Wrong step", actor=alice
    )
    with pytest.raises(ValidationError):  # but a new text with one is refused
        services.variance_amend(variance=variance, changes={"rationale": f"{NHS_TEXT}."}, reason="Typo", actor=alice)
    services.variance_withdraw(variance=variance, reason="Recorded on the wrong episode", actor=alice)

    assert Variance.objects.get(pk=variance.pk).status == Variance.Status.WITHDRAWN
