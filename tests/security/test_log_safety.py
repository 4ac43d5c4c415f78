"""Check 10: passwords, tokens, session ids and free-text rationale never reach the logs,
and CR/LF in anything a client sends cannot forge a log line."""

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.services import api_token_create
from tests.conftest import PASSWORD
from tests.variances.factories import build_pathway, reason, start

pytestmark = pytest.mark.django_db

RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
RATIONALE = "Patient declined spinal anaesthetic after discussing her late husband's surgery"


def assert_every_line_is_a_record_or_a_marked_continuation(output: str) -> None:
    for line in output.splitlines():
        assert RECORD_START.match(line) or line.startswith("  | "), f"forged or unmarked log line: {line!r}"


def test_it_logs_no_password_on_failed_and_successful_sign_in(client, alice, log_output):
    client.post(reverse("accounts:login"), {"username": "alice", "password": "Wrong-Horse-Battery-1"})
    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})

    logged = log_output.getvalue()
    assert "Wrong-Horse-Battery-1" not in logged
    assert PASSWORD not in logged
    stored = " ".join(str(e.detail) + e.object_id for e in AuditEvent.objects.all())
    assert "Wrong-Horse-Battery-1" not in stored and PASSWORD not in stored


def test_it_logs_no_session_id(client, alice, log_output):
    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.get(reverse("home"))
    client.get("/no-such-page/")
    client.post(reverse("accounts:logout"))

    assert session_id not in log_output.getvalue()


def test_it_logs_no_bearer_token_accepted_or_refused(alice, log_output):
    _, token = api_token_create(user=alice, name="theatre system")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/org-units/").status_code == 200
    assert client.get("/api/v1/episodes/999999/").status_code == 404
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}x")
    assert client.get("/api/v1/org-units/").status_code == 401

    logged = log_output.getvalue()
    assert token not in logged
    assert token[3:20] not in logged  # not even a recognisable part of it


@pytest.fixture
def episode(org, alice):
    return start(build_pathway(org["ORTHO"], user=alice), org["ORTHO"], alice, ref="PT-9R2M4C")


def test_it_logs_no_free_text_rationale_recorded_or_refused(alice, episode, log_output):
    reason()  # seeds the base reason catalogue
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=alice)[1]}")
    payload = {
        "episode": episode.pk,
        "step": "SURGERY",
        "type": "delay",
        "cause": "patient",
        "reason": "patient-contraindication",
        "valence": "neutral",
        "rationale": RATIONALE,
        "occurred_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
    }
    accepted = client.post("/api/v1/variances/", payload, format="json")
    refused = client.post("/api/v1/variances/", {**payload, "cause": "the moon"}, format="json")

    assert accepted.status_code == 201, accepted.content
    assert refused.status_code == 400
    assert RATIONALE not in log_output.getvalue()
    assert not any(RATIONALE in str(e.detail) for e in AuditEvent.objects.all())


def test_it_cannot_be_made_to_forge_a_log_line_through_the_path_a_username_or_a_header(client, alice, log_output):
    forged = "2026-01-01 00:00:00,000 INFO django.security [-] FORGED admin granted"
    client.get("/no-such-page/%0D%0A" + forged.replace(" ", "%20"))
    client.post(reverse("accounts:login"), {"username": f"alice\r\n{forged}", "password": "x"})
    client.get(reverse("accounts:login"), HTTP_X_REQUEST_ID=f"abc\r\n{forged}")
    client.get(reverse("accounts:login"), HTTP_USER_AGENT=f"curl\r\n{forged}")

    logged = log_output.getvalue()
    assert "FORGED" in logged  # it was logged...
    assert_every_line_is_a_record_or_a_marked_continuation(logged)  # ...but never as a record of its own


def test_it_cannot_be_made_to_forge_a_log_line_through_an_exception_message(alice, log_output):
    from tests.conftest import login

    forged = "2026-01-01 00:00:00,000 INFO django.security [-] FORGED"
    client = login(Client(raise_request_exception=False), alice)
    with mock.patch("pathways.selectors.home_panel", side_effect=ValueError(f"bad input\r\n{forged}")):
        assert client.get(reverse("home")).status_code == 500

    logged = log_output.getvalue()
    assert "FORGED" in logged
    assert_every_line_is_a_record_or_a_marked_continuation(logged)
