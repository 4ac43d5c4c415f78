"""Who accessed an episode, and what a person did: for clinical leads (their units) and admins."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.audit import audit_record
from accounts.models import AuditCheck, AuditEvent
from tests.conftest import login

pytestmark = pytest.mark.django_db


def read_episode(user, ref, unit, n=1):
    for _ in range(n):
        audit_record(
            action="episode.read",
            actor=user,
            object_type="variances.episode",
            object_id="7",
            episode_ref=ref,
            org_unit=unit,
        )


def page_without_tokens(response) -> str:
    """The page minus what differs on every request (correlation id, CSRF token)."""
    text = response.content.decode()
    text = re.sub(r"<code>[0-9a-f]{32}</code>", "", text)
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", text)


@pytest.fixture
def trail(org, alice, dora):
    read_episode(alice, "PT-0RTHO1", org["ORTHO"], n=2)
    read_episode(dora, "PT-ED0001", org["ED"])
    audit_record(action="login", actor=alice, obj=alice)


def test_it_shows_a_lead_who_accessed_an_episode_of_their_unit(client, bob, trail):
    page = login(client, bob).get(reverse("accounts:audit_episode", args=["PT-0RTHO1"])).content.decode()

    assert "<h1>Who accessed PT-0RTHO1</h1>" in page
    assert (
        '<a href="/accounts/audit/users/alice/">alice</a></td>\n        <td>Clinician</td>\n        <td class="num">2</td>'
        in page
    )
    assert "episode.read" in page


def test_it_hides_another_units_episode_from_a_lead_as_if_it_did_not_exist(client, bob, trail):
    other = login(client, bob).get(reverse("accounts:audit_episode", args=["PT-ED0001"]))
    missing = client.get(reverse("accounts:audit_episode", args=["PT-NONE99"]))

    assert other.status_code == missing.status_code == 404
    assert page_without_tokens(other) == page_without_tokens(missing)
    assert b"dora" not in other.content
    denial = AuditEvent.objects.get(action="access.denied")
    assert (denial.actor_name, denial.object_id, denial.outcome) == ("bob", "PT-ED0001", "denied")


def test_it_shows_an_admin_every_units_episodes(client, erin, trail):
    response = login(client, erin).get(reverse("accounts:audit_episode", args=["PT-ED0001"]))

    assert response.status_code == 200
    assert '<a href="/accounts/audit/users/dora/">dora</a>' in response.content.decode()


def test_it_shows_a_lead_the_activity_of_a_member_of_their_unit_including_sign_ins(client, bob, org, alice, trail):
    audit_record(
        action="episode.read", actor=alice, object_type="variances.episode", episode_ref="PT-ED0002", org_unit=org["ED"]
    )

    page = login(client, bob).get(reverse("accounts:audit_user", args=["alice"])).content.decode()

    assert "<h1>Activity of Dr Alice Adeyemi</h1>" in page
    assert page.count("episode.read") == 2
    assert "<td>login</td>" in page
    assert "PT-ED0002" not in page  # done in another unit: not the lead's business


def test_it_hides_the_activity_of_someone_outside_the_leads_units(client, bob, trail):
    response = login(client, bob).get(reverse("accounts:audit_user", args=["dora"]))

    assert response.status_code == 404
    assert AuditEvent.objects.filter(action="access.denied", actor_name="bob", object_id="dora").exists()


@pytest.mark.parametrize("persona", ["alice", "carol", "fred"])
def test_it_refuses_the_audit_reports_to_other_roles(client, persona, request, trail):
    login(client, request.getfixturevalue(persona))

    for url in [
        reverse("accounts:audit_home"),
        reverse("accounts:audit_episode", args=["PT-0RTHO1"]),
        reverse("accounts:audit_user", args=["alice"]),
    ]:
        response = client.get(url)
        assert response.status_code == 403
        assert "Not available to you" in response.content.decode()
        assert "episode.read" not in response.content.decode()


def test_it_audits_reading_the_reports(client, bob, trail):
    login(client, bob).get(reverse("accounts:audit_episode", args=["PT-0RTHO1"]))
    client.get(reverse("accounts:audit_user", args=["alice"]))

    actions = list(AuditEvent.objects.filter(actor_name="bob").values_list("action", "object_id"))
    assert ("audit.read_episode_access", "PT-0RTHO1") in actions
    assert ("audit.read_activity", str(AuditEvent.objects.get(action="login", actor_name="alice").actor_id)) in actions


def test_it_finds_an_episode_or_a_person_from_the_search_forms(client, bob, trail):
    login(client, bob)

    assert client.get(reverse("accounts:audit_home"), {"episode": "pt-0rtho1"})["Location"] == reverse(
        "accounts:audit_episode", args=["PT-0RTHO1"]
    )
    assert client.get(reverse("accounts:audit_home"), {"user": "alice"})["Location"] == reverse(
        "accounts:audit_user", args=["alice"]
    )


def test_it_lists_recent_events_of_the_leads_units_only(client, bob, trail):
    page = login(client, bob).get(reverse("accounts:audit_home")).content.decode()

    assert "PT-0RTHO1" in page
    assert "PT-ED0001" not in page
    assert "Tamper check" not in page  # administrators only


def test_it_lets_an_admin_verify_the_chain_and_shows_the_verdict(
    client, erin, trail, django_capture_on_commit_callbacks
):
    login(client, erin)
    page = client.get(reverse("accounts:audit_home")).content.decode()
    assert "The chain has not been verified yet" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:audit_check_create"))
    page = client.get(response["Location"]).content.decode()

    assert "is queued" in page
    # alice's and dora's reads and alice's sign-in, erin's sign-in, the request for the check
    assert '<span class="tag ok">Chain intact</span> 6 events verified' in page
    assert AuditCheck.objects.get().status == AuditCheck.Status.PASSED


def test_it_shows_a_broken_chain_as_an_alert(client, erin, trail):
    AuditCheck.objects.create(
        status=AuditCheck.Status.FAILED,
        first_bad_event_id=2,
        reason="its content does not match its hash (altered)",
        finished_at="2026-03-02T09:00:00Z",
    )

    page = login(client, erin).get(reverse("accounts:audit_home")).content.decode()

    assert '<p role="alert"><span class="tag bad">Chain broken</span> at event 2: its content does not match' in page


def test_it_refuses_the_chain_check_to_a_lead(client, bob):
    assert login(client, bob).post(reverse("accounts:audit_check_create")).status_code == 403
    assert not AuditCheck.objects.exists()


@pytest.mark.parametrize(
    ("url_name", "arg"), [("accounts:audit_episode", "PT-0RTHO1"), ("accounts:audit_user", "alice")]
)
def test_it_reads_a_page_of_events_in_constant_queries(client, bob, org, alice, url_name, arg, trail):
    login(client, bob)
    url = reverse(url_name, args=[arg])
    client.get(url)  # warm up the session and membership caches

    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    read_episode(alice, "PT-0RTHO1", org["ORTHO"], n=30)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200

    assert len(many) == len(few)
