"""Check 4: a failure between a write and its audit event leaves neither behind."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.services import api_token_create
from tests.api.factories import theatre_delay
from tests.conftest import login
from tests.variances.factories import build_pathway, reason, start, step
from variances import services
from variances.models import Variance, VarianceRevision

# Real transactions (not the test's wrapping one): what is committed is what a user would see.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def episode(org, alice):
    return start(build_pathway(org["ORTHO"], user=alice), org["ORTHO"], alice, ref="PT-5T8W3N")


def audit_write_fails():
    """The audit event's INSERT fails, after the variance and its revision were inserted."""
    return mock.patch.object(AuditEvent, "save", side_effect=DatabaseError("injected: audit insert failed"))


def counts():
    return Variance.objects.count(), VarianceRevision.objects.count(), AuditEvent.objects.count()


def test_it_keeps_neither_the_variance_nor_its_audit_event_when_the_audit_insert_fails(alice, episode):
    reason()
    before = counts()

    with audit_write_fails(), pytest.raises(DatabaseError, match="injected"):
        services.variance_record(
            episode=episode,
            step=step(episode.version, "SURGERY"),
            variance_type=Variance.Type.DELAY,
            cause=Variance.Cause.SYSTEM,
            reason=reason("service-not-available"),
            valence=Variance.Valence.NEGATIVE,
            occurred_at=timezone.now() - timedelta(minutes=5),
            actor=alice,
        )

    assert counts() == before


def test_it_answers_the_api_client_with_a_clean_error_and_keeps_nothing(alice, episode):
    reason()
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=alice)[1]}")
    before = counts()

    with audit_write_fails():
        body = theatre_delay(episode, occurred_at=(timezone.now() - timedelta(minutes=5)).isoformat())
        response = client.post("/api/v1/variances/", body, format="json")

    assert response.status_code in (500, 503)
    assert response["Content-Type"] == "application/problem+json"
    assert "injected" not in response.content.decode()
    assert counts() == before


def test_it_shows_the_browser_user_the_error_page_and_keeps_nothing(alice, episode):
    reason()
    client = login(Client(raise_request_exception=False), alice)
    before = counts()

    with audit_write_fails():
        response = client.post(
            reverse("variances:variance_record", args=[episode.pk]),
            {
                "step": step(episode.version, "SURGERY").pk,
                "variance_type": "delay",
                "cause": "system",
                "reason": reason("service-not-available").pk,
                "valence": "negative",
                "level": "process",
                "occurred_at": (timezone.localtime() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
            },
        )

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
    assert counts() == before
