"""Idempotency-Key on POST: same key and body -> the stored response; other body -> 422; in flight -> 409."""

from contextlib import contextmanager
from datetime import timedelta

import time_machine
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from accounts.api_support import key_lock_id, request_fingerprint
from accounts.models import IdempotencyKey
from accounts.tasks import purge_idempotency_keys
from tests.api.conftest import problem
from tests.api.factories import build_tkr, start_episode
from tests.conftest import require
from variances import services
from variances.models import Episode


def episode_body(ref="PT-7F3K2Q"):
    return {
        "pathway": "TKR",
        "patient_ref": ref,
        "org_unit": "ORTHO",
        "started_at": (timezone.now() - timedelta(hours=2)).isoformat(),
    }


def post(client, body, key="key-1"):
    return client.post("/api/v1/episodes/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@contextmanager
def running_request_holding(row: IdempotencyKey):
    """What a live request holds on PostgreSQL while its key is in flight: the key's advisory lock."""
    if connection.vendor != "postgresql":
        yield
        return
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key_lock_id(row.client_id, row.key)])
        yield
    finally:
        other.close()


def test_it_replays_the_stored_response_for_the_same_key_and_body(api, sam, org):
    build_tkr(org["ORTHO"])
    client = api(sam)
    body = episode_body()

    first = post(client, body)
    again = post(client, body)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["ETag"] == first["ETag"]
    assert again["Idempotent-Replayed"] == "true"
    assert Episode.objects.count() == 1


def test_it_refuses_the_same_key_with_another_body(api, sam, org):
    build_tkr(org["ORTHO"])
    client = api(sam)
    post(client, episode_body("PT-7F3K2Q"))

    response = post(client, episode_body("PT-9Z9Z9Z"))

    assert response.status_code == 422
    assert problem(response)["type"] == "urn:commonpath:problem:idempotency-key-reused"
    assert Episode.objects.count() == 1


def test_it_answers_409_while_the_first_request_is_in_flight(api, sam, org):
    build_tkr(org["ORTHO"])
    client = api(sam)
    body = episode_body()
    post(client, body)
    # Put the key back in the state it has while its first request is still running:
    # the row in flight and (PostgreSQL) the key's lock held by that request's connection.
    IdempotencyKey.objects.update(status=IdempotencyKey.Status.IN_FLIGHT, response_status=None)
    with running_request_holding(IdempotencyKey.objects.get()):
        response = post(client, body)

    assert response.status_code == 409
    assert response["Retry-After"] == "1"
    assert "still being processed" in problem(response)["detail"]


def test_it_takes_over_at_once_a_key_whose_request_lost_its_database_connection(api, sam, org):
    """A database restart killed the first attempt after its key was committed: no 409 for two minutes."""
    require(connection.vendor == "postgresql", "the advisory lock is PostgreSQL's")
    build_tkr(org["ORTHO"])
    body = episode_body()
    IdempotencyKey.objects.create(
        client=sam,
        key="key-1",
        method="POST",
        path="/api/v1/episodes/",
        request_hash=request_fingerprint("POST", "/api/v1/episodes/", body),
        created_at=timezone.now(),  # just now, but no live request holds its lock
    )

    response = post(api(sam), body)

    assert response.status_code == 201, response.content
    assert Episode.objects.count() == 1
    assert IdempotencyKey.objects.get().status == "completed"


def test_it_takes_over_a_key_whose_request_died_in_flight(api, sam, org):
    build_tkr(org["ORTHO"])
    body = episode_body()
    # What a crash mid-request leaves: the key row (committed first) in flight, the write rolled back.
    IdempotencyKey.objects.create(
        client=sam,
        key="key-1",
        method="POST",
        path="/api/v1/episodes/",
        request_hash=request_fingerprint("POST", "/api/v1/episodes/", body),
        created_at=timezone.now() - timedelta(minutes=10),
    )

    response = post(api(sam), body)

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Episode.objects.count() == 1
    assert IdempotencyKey.objects.get().status == "completed"


def test_it_remembers_a_rejected_request_too(api, sam, org):
    build_tkr(org["ORTHO"])
    client = api(sam)
    body = {**episode_body(), "patient_ref": "John Smith"}

    first = post(client, body)
    again = post(client, body)

    assert first.status_code == again.status_code == 400
    assert again.json()["errors"] == first.json()["errors"]
    assert again["Content-Type"] == "application/problem+json"


def test_it_forgets_the_key_when_the_server_failed_so_a_retry_can_succeed(api, sam, org, monkeypatch):
    build_tkr(org["ORTHO"])
    client = api(sam)
    body = episode_body()
    from variances import services

    real = services.episode_start
    monkeypatch.setattr(services, "episode_start", lambda **kw: (_ for _ in ()).throw(RuntimeError("disk full")))
    failed = post(client, body)
    monkeypatch.setattr(services, "episode_start", real)
    retried = post(client, body)

    assert failed.status_code == 500
    assert retried.status_code == 201
    assert Episode.objects.count() == 1


def test_it_keeps_keys_per_client(api, sam, bob, org):
    build_tkr(org["ORTHO"])

    assert post(api(sam), episode_body("PT-1111A")).status_code == 201
    assert post(api(bob), episode_body("PT-2222B")).status_code == 201
    assert Episode.objects.count() == 2


def test_it_keeps_keys_for_24_hours_then_purges_them(api, sam, org):
    build_tkr(org["ORTHO"])
    client = api(sam)
    body = episode_body()
    with time_machine.travel(timezone.now() - timedelta(hours=23)):
        post(client, body)

    assert post(client, body)["Idempotent-Replayed"] == "true"  # 23 hours later: still the same answer
    assert purge_idempotency_keys() == 0
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert purge_idempotency_keys() == 1
    assert IdempotencyKey.objects.count() == 0


def test_it_refuses_a_malformed_key(api, sam, org):
    response = post(api(sam), episode_body(), key="ünïcode key")

    assert response.status_code == 400
    assert problem(response)["errors"][0]["field"] == "Idempotency-Key"


def test_it_stores_a_rejection_that_echoes_a_field_name_with_a_nul_character(api, sam, org):
    client = api(sam)
    body = {**episode_body(), "bad\u0000field": 1}

    first = post(client, body)
    again = post(client, body)

    assert first.status_code == again.status_code == 400
    assert "bad\u0000field" in {e["field"] for e in first.json()["errors"]}
    assert again["Idempotent-Replayed"] == "true"


def test_a_stale_if_match_is_not_replayed_so_a_retry_with_a_fresh_one_succeeds(api, alice, org):
    """412 and 428 answer the record's state, not the request: the client reads it again and retries under
    the same key (the body, and so the request's fingerprint, unchanged)."""
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=50)
    client = api(alice)
    url = f"/api/v1/episodes/{episode.pk}/"
    stale = client.get(url)["ETag"]
    services.event_record(
        episode=episode, step=episode.version.steps.get(code="PREOP"),
        occurred_at=episode.started_at + timedelta(hours=1), source="manual", actor=alice,
    )  # fmt: skip
    body = {"ended_at": (timezone.now() - timedelta(hours=1)).isoformat()}

    refused = client.post(f"{url}close/", body, format="json", HTTP_IDEMPOTENCY_KEY="close-1", HTTP_IF_MATCH=stale)
    assert refused.status_code == 412
    assert problem(refused)["type"] == "urn:commonpath:problem:stale-version"
    assert not IdempotencyKey.objects.exists()

    fresh = client.get(url)["ETag"]
    retried = client.post(f"{url}close/", body, format="json", HTTP_IDEMPOTENCY_KEY="close-1", HTTP_IF_MATCH=fresh)

    assert retried.status_code == 200, retried.content
    assert "Idempotent-Replayed" not in retried
    assert retried.json()["status"] == "completed"
    assert IdempotencyKey.objects.get().response_status == 200


def test_a_refusal_of_access_is_not_replayed_either(api, alice, dora, org):
    """Out of scope today (404) may be in scope tomorrow, when the caller is given the unit."""
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    body = {"ended_at": timezone.now().isoformat()}

    refused = api(dora).post(f"/api/v1/episodes/{episode.pk}/close/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert refused.status_code == 404
    assert problem(refused)["detail"] == "No episode with this identifier is available to you."
    assert not IdempotencyKey.objects.exists()
