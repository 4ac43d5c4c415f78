"""POST /api/v1/episodes/{id}/outcomes/: a closed episode's readmission and complication, recorded after discharge."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from tests.api.conftest import error_fields, problem
from tests.api.factories import build_tkr, start_episode
from variances import services
from variances.models import Episode


@pytest.fixture
def discharged(org, alice):
    """alice's knee patient, discharged yesterday without a complication; readmission not known yet."""
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=80)
    services.episode_close(
        episode=episode, ended_at=timezone.now() - timedelta(days=1), complication=False, actor=alice
    )
    return Episode.objects.get(pk=episode.pk)


def url(episode) -> str:
    return f"/api/v1/episodes/{episode.pk}/outcomes/"


def test_it_records_a_readmission_after_discharge_and_answers_the_episode_with_its_new_etag(api, discharged, bob):
    client = api(bob)
    etag = client.get(f"/api/v1/episodes/{discharged.pk}/")["ETag"]

    response = client.post(url(discharged), {"readmitted_30d": True}, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"], body["readmitted_30d"], body["complication"]) == (
        discharged.pk,
        "completed",
        True,
        False,  # not sent: unchanged
    )
    assert body["costs"]["final"] is True
    assert response["ETag"] == f'"episode-{discharged.pk}-{discharged.row_version + 1}"' != etag
    assert client.get(f"/api/v1/episodes/{discharged.pk}/")["ETag"] == response["ETag"]
    change = AuditEvent.objects.get(action="episode.outcomes")
    assert (change.actor_name, change.object_id) == ("bob", str(discharged.pk))
    assert (change.detail["before"], change.detail["after"]) == ({"readmitted_30d": None}, {"readmitted_30d": True})


def test_it_takes_a_correction_and_null_for_not_known(api, discharged, alice):
    client = api(alice)
    first = client.post(
        url(discharged),
        {"readmitted_30d": True},
        format="json",
        HTTP_IF_MATCH=f'"episode-{discharged.pk}-{discharged.row_version}"',
    )

    corrected = client.post(
        url(discharged), {"readmitted_30d": False, "complication": None}, format="json", HTTP_IF_MATCH=first["ETag"]
    )

    assert corrected.status_code == 200, corrected.content
    assert (corrected.json()["readmitted_30d"], corrected.json()["complication"]) == (False, None)
    assert [e.detail["after"] for e in AuditEvent.objects.filter(action="episode.outcomes").order_by("id")] == [
        {"readmitted_30d": True},
        {"readmitted_30d": False, "complication": None},
    ]


def test_the_values_already_recorded_change_nothing_and_keep_the_etag(api, discharged, alice):
    client = api(alice)
    etag = client.get(f"/api/v1/episodes/{discharged.pk}/")["ETag"]

    response = client.post(
        url(discharged), {"readmitted_30d": None, "complication": False}, format="json", HTTP_IF_MATCH=etag
    )

    assert response.status_code == 200
    assert response["ETag"] == etag
    assert not AuditEvent.objects.filter(action="episode.outcomes").exists()


def test_an_active_episode_answers_409_as_problem_json(api, org, alice):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    client = api(alice)
    etag = client.get(f"/api/v1/episodes/{episode.pk}/")["ETag"]

    response = client.post(url(episode), {"readmitted_30d": True}, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 409
    body = problem(response)
    assert body["type"] == "urn:commonpath:problem:conflict"
    assert body["title"] == "Conflict"
    assert body["detail"].startswith("This episode is still active: close it first")
    assert body["instance"] == url(episode)
    assert body["request_id"]
    assert Episode.objects.get(pk=episode.pk).readmitted_30d is None


def test_a_stale_if_match_answers_412_and_none_answers_428(api, discharged, alice, bob):
    client = api(alice)
    etag = client.get(f"/api/v1/episodes/{discharged.pk}/")["ETag"]
    services.episode_record_outcomes(episode=discharged, complication=True, actor=bob)

    stale = client.post(url(discharged), {"complication": False}, format="json", HTTP_IF_MATCH=etag)
    missing = client.post(url(discharged), {"complication": False}, format="json")

    assert stale.status_code == 412
    body = problem(stale)
    assert body["type"] == "urn:commonpath:problem:stale-version"
    assert body["detail"].startswith(f"The record has changed since you read it (your If-Match {etag}")
    assert missing.status_code == 428
    assert problem(missing)["type"] == "urn:commonpath:problem:precondition-required"
    assert Episode.objects.get(pk=discharged.pk).complication is True  # bob's change stands


def test_a_clinician_of_another_unit_gets_404_and_a_manager_403_without_record_data(api, discharged, dora, carol):
    etag = f'"episode-{discharged.pk}-{discharged.row_version}"'

    other_unit = api(dora).post(url(discharged), {"readmitted_30d": True}, format="json", HTTP_IF_MATCH=etag)
    manager = api(carol).post(url(discharged), {"readmitted_30d": True}, format="json", HTTP_IF_MATCH=etag)

    # Out of scope is "not found", as for every episode endpoint: its existence is not disclosed.
    assert other_unit.status_code == 404
    assert problem(other_unit)["detail"] == "No episode with this identifier is available to you."
    assert manager.status_code == 403
    assert problem(manager)["detail"].startswith("Your role does not allow this.")
    for response in (other_unit, manager):
        assert "PT-0001A" not in response.content.decode()
    assert Episode.objects.get(pk=discharged.pk).readmitted_30d is None
    assert AuditEvent.objects.filter(action="api.denied", actor_name="dora").exists()


def test_it_names_what_is_wrong_with_the_body(api, discharged, alice):
    client = api(alice)
    etag = f'"episode-{discharged.pk}-{discharged.row_version}"'

    empty = client.post(url(discharged), {}, format="json", HTTP_IF_MATCH=etag)
    wrong = client.post(
        url(discharged), {"readmitted_30d": "perhaps", "status": "active"}, format="json", HTTP_IF_MATCH=etag
    )

    assert empty.status_code == 400
    assert problem(empty)["errors"] == [
        {
            "field": "",
            "pointer": "#",
            "detail": "Send readmitted_30d, complication or both: only what you send changes.",
            "code": "invalid",
        }
    ]
    assert wrong.status_code == 400
    assert error_fields(wrong) == {
        "readmitted_30d": "Must be a valid boolean.",
        "status": "'status' is set by the server and cannot be sent.",
    }
    assert Episode.objects.get(pk=discharged.pk).row_version == discharged.row_version


def test_a_retry_under_the_same_idempotency_key_is_answered_from_the_first(api, discharged, alice):
    client = api(alice)
    etag = f'"episode-{discharged.pk}-{discharged.row_version}"'

    def send():
        return client.post(
            url(discharged), {"readmitted_30d": True}, format="json", HTTP_IF_MATCH=etag, HTTP_IDEMPOTENCY_KEY="pas-91"
        )

    first, retry = send(), send()

    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry["Idempotent-Replayed"] == "true" and retry["ETag"] == first["ETag"]
    assert AuditEvent.objects.filter(action="episode.outcomes").count() == 1


def test_an_exited_episode_takes_its_outcomes_too(api, org, alice):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    services.episode_exit(episode=episode, ended_at=timezone.now(), reason="Transferred to ICU", actor=alice)
    client = api(alice)
    etag = client.get(f"/api/v1/episodes/{episode.pk}/")["ETag"]

    response = client.post(url(episode), {"complication": True}, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["complication"]) == ("exited", True)
