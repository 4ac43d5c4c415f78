"""Concurrency against a live server on PostgreSQL: what integrators' retries and races really do."""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import IdempotencyKey
from accounts.services import api_token_create
from tests.api.factories import build_tkr, reason, record_variance, start_episode
from tests.conftest import require
from variances.models import Episode, Variance, VarianceRevision

# serial: 50 concurrent requests hold about 50 of the cluster's 100 connections, as would another process's.
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.serial]


def call(url, *, token, method="GET", body=None, headers=None, barrier=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http to our live server
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if barrier is not None:
        barrier.wait(timeout=30)  # release every request at the same moment
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the test's own live server
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


@pytest.fixture
def on_postgres(transactional_db):
    require(connection.vendor == "postgresql", "concurrency tests need PostgreSQL (set DATABASE_URL)")


def test_concurrent_starts_without_a_key_give_a_patient_one_active_episode(on_postgres, live_server, org, sam, sue):
    """Two systems (or a retry without Idempotency-Key) start the same patient at once: one wins, the rest 409."""
    build_tkr(org["ORTHO"])
    tokens = [api_token_create(user=user)[1] for user in (sam, sam, sam, sam)]
    body = {
        "pathway": "TKR",
        "patient_ref": "PT-8Q2W4E",
        "org_unit": "ORTHO",
        "started_at": (timezone.now() - timedelta(hours=1)).isoformat(),
    }
    other = {**body, "patient_ref": "PT-9R3T5Y"}
    barrier = threading.Barrier(8)

    def post(n):
        payload = body if n % 2 == 0 else other
        return call(
            f"{live_server.url}/api/v1/episodes/", token=tokens[n % 4], method="POST", body=payload, barrier=barrier
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(post, range(8)))

    statuses = sorted(status for status, _body, _headers in results)
    assert statuses == [201, 201, 409, 409, 409, 409, 409, 409], results
    assert sorted(Episode.objects.values_list("patient_ref", flat=True)) == ["PT-8Q2W4E", "PT-9R3T5Y"]
    refused = [answer for status, answer, _headers in results if status == 409]
    assert all("already has an active episode on TKR" in answer["detail"] for answer in refused)


def test_it_creates_one_episode_from_50_concurrent_posts_with_one_key(on_postgres, live_server, org, sam):
    build_tkr(org["ORTHO"])
    _, token = api_token_create(user=sam)
    body = {
        "pathway": "TKR",
        "patient_ref": "PT-7F3K2Q",
        "org_unit": "ORTHO",
        "started_at": (timezone.now() - timedelta(hours=1)).isoformat(),
    }
    barrier = threading.Barrier(50)

    def post(_n):
        return call(
            f"{live_server.url}/api/v1/episodes/",
            token=token,
            method="POST",
            body=body,
            headers={"Idempotency-Key": "theatre-case-981"},
            barrier=barrier,
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(post, range(50)))

    statuses = [status for status, _body, _headers in results]
    assert Episode.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    assert set(statuses) <= {201, 409}, statuses
    created = [body for status, body, _headers in results if status == 201]
    assert created, statuses
    assert {b["id"] for b in created} == {Episode.objects.get().pk}
    for status, _answer, headers in results:
        if status == 409:
            assert headers["Content-Type"] == "application/problem+json"
            assert headers["Retry-After"] == "1"
    # Once the first has finished, a retry gets the stored answer.
    status, replayed, headers = call(
        f"{live_server.url}/api/v1/episodes/",
        token=token,
        method="POST",
        body=body,
        headers={"Idempotency-Key": "theatre-case-981"},
    )
    assert status == 201, (status, replayed)
    assert (replayed["id"], headers["Idempotent-Replayed"]) == (created[0]["id"], "true")


def test_it_lets_one_of_two_concurrent_amendments_with_the_same_etag_win(on_postgres, live_server, org, alice, bob):
    version = build_tkr(org["ORTHO"])
    reason()
    variance = record_variance(start_episode(version, org["ORTHO"], alice), alice)
    tokens = {user.username: api_token_create(user=user)[1] for user in (alice, bob)}
    url = f"{live_server.url}/api/v1/variances/{variance.pk}/"
    _, _, headers = call(url, token=tokens["alice"])
    etag = headers["ETag"]
    barrier = threading.Barrier(2)

    def amend(username, cause):
        return call(
            url,
            token=tokens[username],
            method="PATCH",
            body={"cause": cause, "amendment_reason": f"{username} corrects the cause"},
            headers={"If-Match": etag},
            barrier=barrier,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(amend, ["alice", "bob"], ["patient", "clinician"]))

    assert sorted(status for status, _b, _h in results) == [200, 412]
    winner = next(body for status, body, _h in results if status == 200)
    variance = Variance.objects.get(pk=variance.pk)
    assert (variance.revision, variance.cause) == (2, winner["cause"])
    assert VarianceRevision.objects.filter(variance=variance).count() == 2
