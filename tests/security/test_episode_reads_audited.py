"""Every read of an episode, in the browser or through the API, leaves an audit event.

The event names who read it (person or service account), the episode's
pseudonymous reference and the request it came from, so that the "who accessed
this" report (accounts:audit_episode) is complete.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.services import api_token_create
from tests.conftest import login
from tests.variances.factories import build_pathway, reason, start, step
from variances import services
from variances.models import Variance

pytestmark = pytest.mark.django_db

REF = "PT-6H3J9D"


@pytest.fixture
def episode(org, alice):
    return start(build_pathway(org["ORTHO"], user=alice), org["ORTHO"], alice, ref=REF)


@pytest.fixture
def variance(episode, alice):
    return services.variance_record(
        episode=episode,
        step=step(episode.version, "SURGERY"),
        variance_type=Variance.Type.DELAY,
        cause=Variance.Cause.SYSTEM,
        reason=reason("service-not-available"),
        valence=Variance.Valence.NEGATIVE,
        occurred_at=timezone.now() - timedelta(minutes=5),
        actor=alice,
    )


BROWSER_READS = [
    ("variances:episode_detail", "episode"),
    ("variances:variance_detail", "variance"),
]
API_READS = [
    ("/api/v1/episodes/{episode}/", "episode"),
    ("/api/v1/episodes/{episode}/events/", "episode"),
    ("/api/v1/variances/{variance}/", "variance"),
    ("/api/v1/variances/{variance}/history/", "variance"),
    ("/api/v1/fhir/CarePlan/{episode}", "episode"),
]


def read_events(response) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(request_id=response["X-Request-ID"], episode_ref=REF))


@pytest.mark.parametrize(("url_name", "kind"), BROWSER_READS)
def test_it_audits_a_clinicians_read_of_an_episode_page(client, alice, episode, variance, url_name, kind):
    obj = {"episode": episode, "variance": variance}[kind]

    response = login(client, alice).get(reverse(url_name, args=[obj.pk]))

    assert response.status_code == 200
    events = read_events(response)
    assert events, f"reading {url_name} left no audit event naming {REF}"
    assert all(e.actor_name == "alice" and e.outcome == "success" for e in events)


@pytest.mark.parametrize(("template", "kind"), API_READS)
def test_it_audits_a_service_accounts_read_of_an_episode_through_the_api(sam, episode, variance, template, kind):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=sam)[1]}")

    response = client.get(template.format(episode=episode.pk, variance=variance.pk))

    assert response.status_code == 200
    events = read_events(response)
    assert events, f"reading {template} left no audit event naming {REF}"
    assert all(e.actor_name == "sam-theatres" for e in events)


def test_it_lists_the_reader_in_who_accessed_this(client, bob, erin, episode):
    login(client, bob).get(reverse("variances:episode_detail", args=[episode.pk]))

    page = login(client, erin).get(reverse("accounts:audit_episode", args=[REF])).content.decode()

    assert '<a href="/accounts/audit/users/bob/">bob</a>' in page
