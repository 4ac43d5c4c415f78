"""Issue #9 check 6, in-process: a lost database is a clean 503, a lost broker loses no task.

Faults are injected with monkeypatch; tests/security/test_faults_live.py does the same
against real PostgreSQL and Redis restarts under load.
"""

from datetime import timedelta

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown
from rest_framework.test import APIClient

from accounts import tasks as accounts_tasks
from accounts.models import AuditCheck
from accounts.queueing import send
from accounts.services import api_token_create, audit_check_request
from tests.api.conftest import problem
from tests.api.factories import build_tkr, reason, start_episode, theatre_delay
from tests.conftest import login
from variances import api as variances_api
from variances import import_jobs
from variances import tasks as variances_tasks
from variances.models import Episode, ImportJob, Variance

TRACE_MARKERS = ("Traceback", "OperationalError", "InterfaceError", "psycopg", 'File "')


@pytest.fixture
def api(db):
    """``api(alice)``: a client sending alice's bearer token."""

    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user)[1]}")
        return client

    return make


def failing(exc_class):
    def fail(*args, **kwargs):
        raise exc_class("server closed the connection unexpectedly\nSELECT secret FROM settings")

    return fail


# --- the database goes away ---------------------------------------------------------------


@pytest.mark.parametrize("exc_class", [OperationalError, InterfaceError])
def test_an_api_request_that_loses_the_database_gets_a_clean_503_it_can_retry(api, alice, org, monkeypatch, exc_class):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    reason()
    client = api(alice)
    monkeypatch.setattr(variances_api.services, "variance_record", failing(exc_class))

    response = client.post(
        "/api/v1/variances/",
        theatre_delay(episode),
        format="json",
        HTTP_IDEMPOTENCY_KEY="var-1",
        HTTP_X_REQUEST_ID="fault-123",
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = problem(response)
    assert body["request_id"] == "fault-123"
    assert "Idempotency-Key" in body["detail"]
    assert not any(marker in response.content.decode() for marker in (*TRACE_MARKERS, "SELECT"))
    assert not Variance.objects.exists()

    monkeypatch.undo()  # the database is back: the same key now records the variance, once
    retried = client.post("/api/v1/variances/", theatre_delay(episode), format="json", HTTP_IDEMPOTENCY_KEY="var-1")
    again = client.post("/api/v1/variances/", theatre_delay(episode), format="json", HTTP_IDEMPOTENCY_KEY="var-1")

    assert retried.status_code == 201, retried.content
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert Variance.objects.count() == 1


def test_a_page_that_loses_the_database_shows_the_error_page_with_503_and_a_reference(alice, monkeypatch):
    browser = login(Client(), alice)
    monkeypatch.setattr("variances.views.selectors.unexplained_for", failing(OperationalError))

    response = browser.get("/variances/", HTTP_X_REQUEST_ID="page-fault-7")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    text = response.content.decode()
    assert "Briefly unavailable" in text and "page-fault-7" in text
    assert not any(marker in text for marker in (*TRACE_MARKERS, "SELECT"))


@pytest.mark.parametrize("path", ["/variances/", "/api/v1/org-units/"])
def test_a_middleware_that_loses_the_database_gets_the_same_503(alice, monkeypatch, path):
    """The session is read by a middleware, outside any view: handler500 maps it to 503."""
    browser = login(Client(raise_request_exception=False), alice)
    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", failing(OperationalError))

    response = browser.get(path, HTTP_X_REQUEST_ID="mw-fault-9")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    text = response.content.decode()
    assert "mw-fault-9" in text
    assert not any(marker in text for marker in (*TRACE_MARKERS, "SELECT"))
    if path.startswith("/api/"):
        assert problem(response)["type"] == "urn:commonpath:problem:service-unavailable"


# --- the broker goes away ------------------------------------------------------------------


@pytest.fixture
def broker_down(monkeypatch):
    """Every publish fails as Celery's does when Redis refuses connections."""
    from celery.app.task import Task

    sent = []

    def refuse(self, *args, **kwargs):
        sent.append(self.name)
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(Task, "delay", refuse)
    return sent


def test_a_write_succeeds_and_is_detected_later_when_the_broker_is_down(
    api, alice, org, broker_down, django_capture_on_commit_callbacks, caplog
):
    version = build_tkr(org["ORTHO"])
    with django_capture_on_commit_callbacks(execute=True):
        episode = start_episode(version, org["ORTHO"], alice, hours_ago=30)
    client = api(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/episodes/{episode.pk}/close/",
            {"ended_at": timezone.now().isoformat()},
            format="json",
            HTTP_IF_MATCH=client.get(f"/api/v1/episodes/{episode.pk}/")["ETag"],
        )

    assert response.status_code == 200, response.content
    assert broker_down == ["variances.detect_episode", "variances.detect_episode"]
    assert "broker unavailable (OperationalError): variances.detect_episode" in caplog.text
    assert Episode.objects.get().status == Episode.Status.COMPLETED
    assert not Variance.objects.exists()  # its detection never ran...

    assert variances_tasks.detect_all_active() == {"omission": 4}  # ...the beat job's sweep catches up


def test_a_queued_import_is_sent_again_by_its_sweeper_after_a_minute(alice, org, broker_down, time_machine):
    job = ImportJob.objects.create(
        requested_by=alice,
        pathway=build_tkr(org["ORTHO"]).pathway,
        org_unit=org["ORTHO"],
        mapping_name="m",
        mapping={},
        file_name="f.csv",
    )
    sent = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(import_jobs.import_events_task, "delay", sent.append)
        assert import_jobs.sweep_import_jobs() == 0  # just queued: its own message may still arrive
        time_machine.move_to(timezone.now() + timedelta(minutes=2))
        assert import_jobs.sweep_import_jobs() == 1
        assert import_jobs.sweep_import_jobs() == 0  # sent a moment ago
        time_machine.move_to(timezone.now() + timedelta(minutes=2))
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
        assert import_jobs.sweep_import_jobs() == 0  # running, heartbeat fresh
        time_machine.move_to(timezone.now() + import_jobs.LEASE + timedelta(minutes=1))
        assert import_jobs.sweep_import_jobs() == 1  # its worker went silent
    assert sent == [job.pk, job.pk]


def test_an_audit_check_requested_while_the_broker_is_down_is_sent_again(
    erin, broker_down, django_capture_on_commit_callbacks, time_machine
):
    with django_capture_on_commit_callbacks(execute=True):
        check = audit_check_request(requested_by=erin)
    assert broker_down == ["accounts.verify_audit_chain"]

    time_machine.move_to(timezone.now() + accounts_tasks.AUDIT_CHECK_RESEND_AFTER + timedelta(minutes=1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts_tasks.verify_audit_chain, "delay", accounts_tasks.verify_audit_chain)
        assert accounts_tasks.sweep_audit_checks() == 1
    check.refresh_from_db()
    assert check.status == AuditCheck.Status.PASSED


def test_send_reports_a_down_broker_without_raising(broker_down):
    assert send(variances_tasks.detect_episode, 1) is False
