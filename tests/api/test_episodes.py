"""/api/v1/episodes/: start, read (audited), list with filters, close or exit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Membership
from tests.api.conftest import error_fields, problem
from tests.api.factories import build_tkr, record_variance, start_episode
from tests.conftest import make_user
from variances.models import Episode


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_it_starts_an_episode_on_the_published_version(api, alice, org):
    build_tkr(org["ORTHO"])
    started = timezone.now() - timedelta(hours=3)

    response = api(alice).post(
        "/api/v1/episodes/",
        {
            "pathway": "TKR",
            "patient_ref": "PT-7F3K2Q",
            "org_unit": "ORTHO-W7",
            "responsible_clinician": "alice",
            "started_at": iso(started),
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    episode = Episode.objects.get()
    assert response["Location"] == f"/api/v1/episodes/{episode.pk}/"
    assert response["ETag"] == f'"episode-{episode.pk}-{episode.row_version}"'
    assert (body["pathway"], body["version"], body["org_unit"]) == ("TKR", 1, "ORTHO-W7")
    assert body["status"] == "active"
    assert body["responsible_clinician"] == "alice"
    assert body["costs"]["expected"] == "4167.125"
    assert body["costs"]["final"] is False
    assert body["events"] == [] and body["variances"] == []
    audit = AuditEvent.objects.get(action="episode.start")
    assert (audit.actor_name, audit.episode_ref) == ("alice", "PT-7F3K2Q")


def test_it_names_each_invalid_field_when_starting_an_episode(api, alice, org):
    build_tkr(org["ORTHO"])

    response = api(alice).post(
        "/api/v1/episodes/",
        {
            "pathway": "NOPE",
            "patient_ref": "John Smith",
            "org_unit": "ED",
            "started_at": "2025-03-01T09:30:00",
            "status": "completed",
            "recorded_by": "bob",
        },
        format="json",
    )

    assert response.status_code == 400
    fields = error_fields(response)
    assert set(fields) == {"pathway", "patient_ref", "started_at", "status", "recorded_by"}
    assert "person's name" in fields["patient_ref"]
    assert "time zone" in fields["started_at"]
    assert "set by the server" in fields["status"]
    assert Episode.objects.count() == 0


def test_it_refuses_to_start_an_episode_in_a_unit_outside_the_callers_scope(api, alice, org):
    build_tkr(org["ORTHO"])

    response = api(alice).post(
        "/api/v1/episodes/",
        {"pathway": "TKR", "patient_ref": "PT-7F3K2Q", "org_unit": "ED", "started_at": iso(timezone.now())},
        format="json",
    )

    assert response.status_code == 400
    assert error_fields(response) == {"org_unit": "You cannot record episodes in this unit."}


def test_it_refuses_a_responsible_clinician_from_another_unit(api, alice, dora, org):
    build_tkr(org["ORTHO"])

    response = api(alice).post(
        "/api/v1/episodes/",
        {
            "pathway": "TKR",
            "patient_ref": "PT-7F3K2Q",
            "org_unit": "ORTHO",
            "responsible_clinician": "dora",
            "started_at": iso(timezone.now()),
        },
        format="json",
    )

    assert response.status_code == 400
    assert error_fields(response) == {"responsible_clinician": "dora is not a clinician in ORTHO."}


@pytest.mark.parametrize("username", ["nosuchuser", "dora"])
def test_a_name_that_does_not_exist_is_answered_as_one_of_another_unit(api, alice, dora, org, username):
    """Otherwise a caller could list the staff of units it cannot see."""
    build_tkr(org["ORTHO"])
    body = {"patient_ref": "PT-7F3K2Q", "org_unit": "ORTHO", "responsible_clinician": username}

    response = api(alice).post(
        "/api/v1/episodes/", {**body, "pathway": "TKR", "started_at": iso(timezone.now())}, format="json"
    )
    unknown = api(alice).post(
        "/api/v1/episodes/", {**body, "pathway": "NOPE", "started_at": iso(timezone.now())}, format="json"
    )

    assert error_fields(response) == {"responsible_clinician": f"{username} is not a clinician in ORTHO."}
    assert error_fields(unknown) == {"pathway": "There is no pathway with the code NOPE."}


def test_it_shows_an_episode_with_events_variances_and_costs_and_audits_the_read(api, alice, bob, org):
    version = build_tkr(org["ORTHO"])
    episode = start_episode(version, org["ORTHO"], alice)
    record_variance(episode, alice)

    response = api(bob).get(f"/api/v1/episodes/{episode.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["patient_ref"] == "PT-0001A"
    assert [v["type"] for v in body["variances"]] == ["delay"]
    assert body["variances"][0]["rationale"] == "Theatre list overran"
    assert body["costs"]["expected"] == "4167.125"
    read = AuditEvent.objects.filter(action="episode.read").get()
    assert (read.actor_name, read.object_id, read.episode_ref) == ("bob", str(episode.pk), "PT-0001A")


def test_it_hides_episodes_of_other_units_behind_404(api, alice, dora, org):
    version = build_tkr(org["ORTHO"])
    episode = start_episode(version, org["ORTHO"], alice)

    response = api(dora).get(f"/api/v1/episodes/{episode.pk}/")

    assert response.status_code == 404
    body = problem(response)
    assert "PT-0001A" not in response.content.decode()
    assert body["detail"] == "No episode with this identifier is available to you."
    denial = AuditEvent.objects.get(action="api.denied")
    assert (denial.actor_name, denial.outcome, denial.object_id) == ("dora", "denied", str(episode.pk))


def test_it_lists_episodes_with_filters_and_count(api, alice, dora, erin, org):
    knee = build_tkr(org["ORTHO"])
    sepsis = build_tkr(org["ED"], code="SEPSIS-ED")
    first = start_episode(knee, org["ORTHO"], alice, ref="PT-0001A", hours_ago=50)
    start_episode(knee, org["ORTHO-W7"], alice, ref="PT-0002B", hours_ago=40)
    start_episode(sepsis, org["ED"], dora, ref="PT-0003C", hours_ago=30)
    client = api(erin)

    def refs(query=""):
        body = client.get(f"/api/v1/episodes/{query}").json()
        assert body["count"] == len(body["results"])
        return [e["patient_ref"] for e in body["results"]]

    assert refs() == ["PT-0003C", "PT-0002B", "PT-0001A"]  # newest first
    assert refs("?pathway=TKR") == ["PT-0002B", "PT-0001A"]
    assert refs("?org_unit=ORTHO-W7") == ["PT-0002B"]
    assert refs("?org_unit=SURG") == ["PT-0002B", "PT-0001A"]
    assert refs("?patient_ref=PT-0003C") == ["PT-0003C"]
    assert refs("?responsible_clinician=dora") == ["PT-0003C"]
    Episode.objects.filter(pk=first.pk).update(updated_at=timezone.now() + timedelta(minutes=1))
    since = iso(timezone.now() + timedelta(seconds=30))
    assert refs(f"?since={since}") == ["PT-0001A"]
    assert refs("?status=completed") == []
    bad = client.get("/api/v1/episodes/?status=finished&since=yesterday")
    assert bad.status_code == 400
    assert set(error_fields(bad)) == {"status", "since"}
    naive = client.get("/api/v1/episodes/?since=2026-11-29T00:00:00")
    assert error_fields(naive) == {
        "since": "Give a time zone, e.g. 2025-03-01T09:30:00Z or +01:00 (written %2B01:00 in a query string)."
    }
    assert refs("?since=2000-01-01T00:00:00%2B01:00") == ["PT-0003C", "PT-0002B", "PT-0001A"]


def test_it_lists_only_episodes_of_the_callers_units(api, alice, dora, org):
    knee = build_tkr(org["ORTHO"])
    start_episode(knee, org["ORTHO"], alice, ref="PT-0001A")
    start_episode(knee, org["ED"], dora, ref="PT-0003C")

    body = api(alice).get("/api/v1/episodes/").json()

    assert body["count"] == 1
    assert [e["patient_ref"] for e in body["results"]] == ["PT-0001A"]
    listed = AuditEvent.objects.get(action="episode.list")
    assert listed.actor_name == "alice"
    assert len(listed.detail["ids"]) == 1


def test_it_lists_episodes_in_a_fixed_number_of_queries(api, erin, alice, org, django_assert_max_num_queries):
    knee = build_tkr(org["ORTHO"])
    for n in range(6):
        start_episode(knee, org["ORTHO"], alice, ref=f"PT-00{n}0A")
    client = api(erin)

    with django_assert_max_num_queries(12):
        assert client.get("/api/v1/episodes/").json()["count"] == 6


def test_it_closes_an_episode_with_its_outcomes(api, alice, org):
    version = build_tkr(org["ORTHO"])
    episode = start_episode(version, org["ORTHO"], alice, hours_ago=80)
    client = api(alice)
    etag = client.get(f"/api/v1/episodes/{episode.pk}/")["ETag"]
    ended = iso(timezone.now() - timedelta(hours=1))

    response = client.post(
        f"/api/v1/episodes/{episode.pk}/close/",
        {"ended_at": ended, "discharge_destination": "care-home", "readmitted_30d": False, "complication": False},
        format="json",
        HTTP_IF_MATCH=etag,
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed"
    assert body["discharge_destination"] == "care-home"
    assert body["length_of_stay_days"] >= 3
    assert body["costs"]["final"] is True
    assert response["ETag"] != etag

    again = client.post(f"/api/v1/episodes/{episode.pk}/close/", {"ended_at": ended}, format="json")
    assert again.status_code == 409  # the record's state forbids it, as the schema documents
    assert problem(again)["detail"] == "This episode is already completed."
    stale = client.post(f"/api/v1/episodes/{episode.pk}/close/", {"ended_at": ended}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412


def test_it_exits_an_episode_with_a_reason(api, alice, org):
    version = build_tkr(org["ORTHO"])
    episode = start_episode(version, org["ORTHO"], alice)

    response = api(alice).post(
        f"/api/v1/episodes/{episode.pk}/close/",
        {"ended_at": iso(timezone.now()), "exit_reason": "Transferred to the regional trauma centre"},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "exited"
    assert body["exit_reason"] == "Transferred to the regional trauma centre"
    assert [v["type"] for v in body["variances"]] == ["exit"]


def test_it_names_an_end_before_the_start_or_in_the_future_when_closing_or_exiting(api, alice, org):
    version = build_tkr(org["ORTHO"])
    episode = start_episode(version, org["ORTHO"], alice)
    client = api(alice)
    before_start = iso(episode.started_at - timedelta(hours=1))
    tomorrow = iso(timezone.now() + timedelta(days=1))

    for body, message in [
        ({"ended_at": before_start}, "The end cannot be before the start of the episode."),
        ({"ended_at": tomorrow}, "This time is in the future."),
        (
            {"ended_at": before_start, "exit_reason": "Transferred"},
            "The end cannot be before the start of the episode.",
        ),
    ]:
        response = client.post(f"/api/v1/episodes/{episode.pk}/close/", body, format="json")
        assert response.status_code == 400, body
        assert error_fields(response) == {"ended_at": message}
    assert Episode.objects.get(pk=episode.pk).status == "active"


def test_it_keeps_episodes_from_managers_and_finance(api, carol, fred, alice, org):
    version = build_tkr(org["ORTHO"])
    episode = start_episode(version, org["ORTHO"], alice)

    for user in (carol, fred):
        client = api(user)
        for url in ("/api/v1/episodes/", f"/api/v1/episodes/{episode.pk}/"):
            response = client.get(url)
            assert response.status_code == 403
            assert "PT-0001A" not in response.content.decode()


def test_a_discharge_destination_is_one_of_the_codes_the_browser_offers(api, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=80)

    response = api(alice).post(
        f"/api/v1/episodes/{episode.pk}/close/",
        {"ended_at": iso(timezone.now() - timedelta(hours=1)), "discharge_destination": "home"},
        format="json",
    )

    assert response.status_code == 400
    assert error_fields(response) == {
        "discharge_destination": '"home" is not a discharge destination code. Give one of: usual-residence, '
        "care-home, rehabilitation, other-hospital, hospice, died, other."
    }
    assert Episode.objects.get(pk=episode.pk).status == "active"


def test_a_patient_has_one_active_episode_on_a_pathway(api, alice, bob, org):
    """Two users starting the same patient's episode: the second is told which one is running.
    An episode that has ended does not block the next."""
    build_tkr(org["ORTHO"])
    body = {"pathway": "TKR", "patient_ref": "PT-7F3K2Q", "org_unit": "ORTHO", "started_at": iso(timezone.now())}

    first = api(alice).post("/api/v1/episodes/", body, format="json")
    second = api(bob).post("/api/v1/episodes/", body, format="json")

    assert first.status_code == 201, first.content
    assert second.status_code == 409
    existing = first.json()["id"]
    assert problem(second)["detail"] == (
        f"PT-7F3K2Q already has an active episode on TKR (episode {existing}). "
        "Record on that one, or complete or exit it before starting another."
    )
    assert problem(second)["type"] == "urn:commonpath:problem:conflict"
    assert Episode.objects.count() == 1

    closed = api(alice).post(f"/api/v1/episodes/{existing}/close/", {"ended_at": iso(timezone.now())}, format="json")
    assert closed.status_code == 200, closed.content
    again = api(bob).post("/api/v1/episodes/", body, format="json")
    assert again.status_code == 201, again.content
    assert Episode.objects.filter(patient_ref="PT-7F3K2Q", status="active").get().pk == again.json()["id"]


def test_a_clinician_filters_episodes_by_their_own_name_only_a_lead_by_the_teams(api, alice, bob, org):
    """Individual figures are private by default: a colleague's episodes, listed by name, would add up to
    their figures. The browser offers a clinician only "mine"; a lead sees the team's individuals."""
    amir = make_user("amir", Membership.Role.CLINICIAN, org["ORTHO"])
    knee = build_tkr(org["ORTHO"])
    start_episode(knee, org["ORTHO"], alice, ref="PT-0001A")
    start_episode(knee, org["ORTHO"], amir, ref="PT-0002B")

    def refs(user, name):
        response = api(user).get(f"/api/v1/episodes/?responsible_clinician={name}")
        assert response.status_code == 200, response.content
        return [e["patient_ref"] for e in response.json()["results"]]

    refused = api(alice).get("/api/v1/episodes/?responsible_clinician=amir")
    assert refused.status_code == 400
    assert error_fields(refused) == {
        "responsible_clinician": "You can filter by your own username only; clinical leads and administrators "
        "filter by their team's clinicians."
    }
    assert refs(alice, "alice") == ["PT-0001A"]
    assert refs(bob, "amir") == ["PT-0002B"]
    assert refs(bob, "alice") == ["PT-0001A"]
