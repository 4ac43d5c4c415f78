"""Free text sent to the API holds no NHS numbers or e-mail addresses: 400 in problem+json, naming the field
and never repeating what was found (a refused request's detail reaches logs and the audit trail)."""

import json

from django.utils import timezone

from accounts.models import AuditEvent
from accounts.privacy import EMAIL_FOUND, NHS_NUMBER_FOUND
from tests.api.conftest import error_fields, problem
from tests.api.factories import build_tkr, reason, record_variance, start_episode, theatre_delay
from variances.models import Episode, StepEvent, Variance

NHS_TEXT = "Mrs Smith NHS 943 476 5919 refused surgery"
EMAIL_TEXT = "Rang her daughter, jane.doe@example.com"


def assert_not_repeated(response) -> None:
    """Neither the answer nor the audit trail holds the identifier."""
    text = response.content.decode()
    assert "5919" not in text and "jane.doe" not in text
    trail = json.dumps(list(AuditEvent.objects.values_list("detail", flat=True)))
    assert "5919" not in trail and "jane.doe" not in trail


def test_recording_a_variance_with_an_identifier_is_refused_naming_the_field(api, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    reason()

    response = api(alice).post(
        "/api/v1/variances/", theatre_delay(episode, rationale=NHS_TEXT, action_taken=EMAIL_TEXT), format="json"
    )

    assert response.status_code == 400
    body = problem(response)
    assert body["type"].endswith("validation-error")
    assert error_fields(response) == {"rationale": NHS_NUMBER_FOUND, "action_taken": EMAIL_FOUND}
    assert_not_repeated(response)
    assert not Variance.objects.exists()


def test_amending_with_an_identifier_is_refused_naming_each_field(api, alice, org):
    variance = record_variance(start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice), alice)
    url = f"/api/v1/variances/{variance.pk}/"
    client = api(alice)

    response = client.patch(
        url,
        {"rationale": NHS_TEXT, "amendment_reason": EMAIL_TEXT},
        format="json",
        HTTP_IF_MATCH=client.get(url)["ETag"],
    )

    assert response.status_code == 400
    assert error_fields(response) == {"rationale": NHS_NUMBER_FOUND, "amendment_reason": EMAIL_FOUND}
    assert_not_repeated(response)
    variance.refresh_from_db()
    assert (variance.revision, variance.rationale) == (1, "Theatre list overran")


def test_withdrawing_exiting_and_recording_events_screen_their_text_too(api, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    variance = record_variance(episode, alice)
    client = api(alice)
    url = f"/api/v1/variances/{variance.pk}/"
    now = timezone.now().isoformat()

    withdraw = client.post(
        f"{url}withdraw/", {"reason": NHS_TEXT}, format="json", HTTP_IF_MATCH=client.get(url)["ETag"]
    )
    exit_ = client.post(
        f"/api/v1/episodes/{episode.pk}/close/", {"ended_at": now, "exit_reason": NHS_TEXT}, format="json"
    )
    events = client.post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"activity": "Blood transfusion", "performed_by": EMAIL_TEXT, "occurred_at": now},
        format="json",
    )

    assert error_fields(withdraw) == {"reason": NHS_NUMBER_FOUND}
    assert error_fields(exit_) == {"exit_reason": NHS_NUMBER_FOUND}
    assert error_fields(events) == {"performed_by": EMAIL_FOUND}
    for response in (withdraw, exit_, events):
        assert response.status_code == 400
        assert_not_repeated(response)
    assert Variance.objects.get(pk=variance.pk).status == Variance.Status.DOCUMENTED
    assert Episode.objects.get(pk=episode.pk).status == Episode.Status.ACTIVE
    assert not StepEvent.objects.filter(episode=episode).exists()
