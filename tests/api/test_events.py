"""POST/GET /api/v1/episodes/{id}/events/: one event, or up to 1,000 applied atomically."""

import time
from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from tests.api.conftest import error_fields, problem
from tests.api.factories import build_tkr, start_episode
from tests.conftest import Role, make_user
from variances.models import EventQuantity, StepEvent


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_it_records_a_step_with_actual_quantities_and_a_dearer_implant(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    done = iso(episode.started_at + timedelta(hours=3))

    response = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {
            "step": "SURGERY",
            "occurred_at": done,
            "performed_by": "Theatre 3 team",
            "external_id": "THEATRE-CASE-981",
            "quantities": [
                {"resource": "THEATRE", "quantity": "120"},
                {"resource": "IMPLANT-KNEE", "quantity": "1", "unit_cost": "2200.00"},
            ],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["step"], body["source"], body["created"]) == ("SURGERY", "api", True)
    assert body["recorded_by"] == "sam-theatres"
    implant = next(q for q in body["quantities"] if q["resource"] == "IMPLANT-KNEE")
    assert implant["unit_cost"] == "2200"
    assert EventQuantity.objects.filter(event__episode=episode).count() == 2
    detail = api(alice).get(f"/api/v1/episodes/{episode.pk}/").json()
    assert detail["costs"]["price_variance"] == "200"


def test_it_records_an_unplanned_activity_with_a_null_step(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    response = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": None, "activity": "CT head", "occurred_at": iso(timezone.now())},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert (response.json()["step"], response.json()["activity"]) == (None, "CT head")


def test_it_refuses_an_event_in_the_future_with_the_same_words(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    response = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": None, "activity": "CT head", "occurred_at": iso(timezone.now() + timedelta(days=1))},
        format="json",
    )

    assert response.status_code == 400
    assert error_fields(response) == {"occurred_at": "This time is in the future."}
    assert not StepEvent.objects.filter(episode=episode).exists()


def test_it_returns_the_stored_event_when_an_external_id_is_sent_again(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    payload = {"step": "PREOP", "occurred_at": iso(timezone.now()), "external_id": "PAS-1"}
    client = api(sam)

    first = client.post(f"/api/v1/episodes/{episode.pk}/events/", payload, format="json")
    second = client.post(f"/api/v1/episodes/{episode.pk}/events/", payload, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["created"] is False
    assert StepEvent.objects.count() == 1


def test_external_ids_are_each_sending_systems_own(api, sam, alice, org):
    """Two feeds numbering their cases alike do not refuse each other, nor learn each other's ids."""
    pas = make_user("pas-feed", Role.CLINICIAN, org["ORTHO"], kind=User.Kind.SERVICE)
    knee = build_tkr(org["ORTHO"])
    theatre_case = start_episode(knee, org["ORTHO"], alice, hours_ago=5)
    ward_case = start_episode(knee, org["ORTHO"], alice, ref="PT-0002B", hours_ago=5)
    at = iso(theatre_case.started_at + timedelta(hours=1))
    payload = {"step": "PREOP", "occurred_at": at, "external_id": "CASE-1"}

    from_theatres = api(sam).post(f"/api/v1/episodes/{theatre_case.pk}/events/", payload, format="json")
    from_pas = api(pas).post(f"/api/v1/episodes/{ward_case.pk}/events/", payload, format="json")
    resent_by_pas = api(pas).post(f"/api/v1/episodes/{ward_case.pk}/events/", payload, format="json")
    theatres_elsewhere = api(sam).post(f"/api/v1/episodes/{ward_case.pk}/events/", payload, format="json")

    assert (from_theatres.status_code, from_pas.status_code, resent_by_pas.status_code) == (201, 201, 200)
    assert resent_by_pas.json()["id"] == from_pas.json()["id"] != from_theatres.json()["id"]
    assert theatres_elsewhere.status_code == 400
    assert error_fields(theatres_elsewhere) == {"external_id": "You already used this external id for another episode."}
    assert sorted(StepEvent.objects.values_list("episode_id", "recorded_by__username")) == sorted(
        [(theatre_case.pk, "sam-theatres"), (ward_case.pk, "pas-feed")]
    )


def test_it_refuses_a_changed_event_under_an_external_id_already_sent(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=5)
    at = episode.started_at + timedelta(hours=1)
    client = api(sam)
    first = client.post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": "PREOP", "occurred_at": iso(at), "external_id": "ORMIS-PREOP-981"},
        format="json",
    )

    corrected = client.post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": "PREOP", "occurred_at": iso(at + timedelta(hours=1)), "external_id": "ORMIS-PREOP-981"},
        format="json",
    )

    assert corrected.status_code == 400
    assert error_fields(corrected) == {
        "external_id": f"This external id was already used for event {first.json()['id']}, which differs in "
        "occurred_at. A recorded event is not changed: send it again as it was, or record the correction as an "
        "event with an external id of its own."
    }
    assert StepEvent.objects.get().occurred_at == at


def test_it_refuses_a_batch_that_sends_one_external_id_twice(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=5)
    at = iso(episode.started_at + timedelta(hours=1))
    batch = [
        {"step": "PHYSIO", "occurred_at": at, "external_id": "DUP-1"},
        {"step": "SURGERY", "occurred_at": at, "external_id": "DUP-1"},
    ]

    response = api(sam).post(f"/api/v1/episodes/{episode.pk}/events/", batch, format="json")

    # The second would have been answered with the first, and never stored.
    assert response.status_code == 400
    assert error_fields(response) == {
        "1.external_id": "Event 0 of this batch has the same external id: give each its own."
    }
    assert not StepEvent.objects.exists()


def test_it_applies_a_batch_atomically_and_names_the_bad_item(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    at = episode.started_at + timedelta(hours=1)
    batch = [
        {"step": "PREOP", "occurred_at": iso(at)},
        {"step": "SURGERY", "occurred_at": iso(at + timedelta(hours=2))},
        {"step": "NOT-A-STEP", "occurred_at": iso(at)},
        {"step": "PHYSIO", "occurred_at": iso(at), "quantities": [{"resource": "UNICORN", "quantity": "1"}]},
    ]

    response = api(sam).post(f"/api/v1/episodes/{episode.pk}/events/", batch, format="json")

    assert response.status_code == 400
    fields = error_fields(response)
    assert fields == {
        "2.step": "No step NOT-A-STEP on this episode's pathway version.",
        "3.quantities": "Unknown resource code: UNICORN.",
    }
    assert StepEvent.objects.count() == 0  # nothing from the good items either


def test_it_records_a_batch_in_order(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    at = episode.started_at + timedelta(hours=1)
    batch = [
        {"step": "STAY", "occurred_at": iso(at + timedelta(hours=20)), "external_id": "BED-1"},
        {"step": "PREOP", "occurred_at": iso(at)},
        {"step": "SURGERY", "occurred_at": iso(at + timedelta(hours=2))},
    ]

    response = api(sam).post(f"/api/v1/episodes/{episode.pk}/events/", batch, format="json")

    assert response.status_code == 201, response.content
    assert [e["step"] for e in response.json()] == ["STAY", "PREOP", "SURGERY"]
    listed = api(alice).get(f"/api/v1/episodes/{episode.pk}/events/").json()
    assert listed["count"] == 3
    assert [e["step"] for e in listed["results"]] == ["PREOP", "SURGERY", "STAY"]  # by time
    assert [
        e["step"] for e in api(alice).get(f"/api/v1/episodes/{episode.pk}/events/?step=PREOP").json()["results"]
    ] == ["PREOP"]


def test_it_accepts_a_batch_of_1000_events_and_refuses_1001(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    at = episode.started_at + timedelta(hours=1)
    batch = [
        {"step": "STAY", "occurred_at": iso(at + timedelta(minutes=n)), "external_id": f"OBS-{n}"} for n in range(1000)
    ]
    client = api(sam)

    too_many = client.post(f"/api/v1/episodes/{episode.pk}/events/", [*batch, batch[0]], format="json")
    assert too_many.status_code == 400
    assert "between 1 and 1,000" in problem(too_many)["detail"]

    started = time.monotonic()
    response = client.post(f"/api/v1/episodes/{episode.pk}/events/", batch, format="json")
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.content[:500]
    assert len(response.json()) == 1000
    assert StepEvent.objects.filter(episode=episode).count() == 1000
    assert elapsed < 120, f"a batch of 1,000 took {elapsed:.1f}s"


def test_it_refuses_events_with_unknown_or_server_set_fields(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    response = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": "PREOP", "occurred_at": iso(timezone.now()), "recorded_at": iso(timezone.now()), "source": "manual"},
        format="json",
    )

    assert response.status_code == 400
    assert set(error_fields(response)) == {"recorded_at", "source"}


def test_it_hides_another_units_episode_from_a_service_account(api, sue, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    response = api(sue).post(
        f"/api/v1/episodes/{episode.pk}/events/", {"step": "PREOP", "occurred_at": iso(timezone.now())}, format="json"
    )

    assert response.status_code == 404
    assert StepEvent.objects.count() == 0


def test_it_lists_events_in_a_fixed_number_of_queries(api, alice, org, django_assert_max_num_queries):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    client = api(alice)
    batch = [{"step": "STAY", "occurred_at": iso(episode.started_at + timedelta(minutes=n))} for n in range(20)]
    assert client.post(f"/api/v1/episodes/{episode.pk}/events/", batch, format="json").status_code == 201

    with django_assert_max_num_queries(14):
        assert client.get(f"/api/v1/episodes/{episode.pk}/events/").json()["count"] == 20


def test_a_new_event_is_answered_as_it_reads_back_later(api, sam, alice, org):
    """The 201 body is built from the objects just written: it must match a later read exactly."""
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    payload = {
        "step": "SURGERY",
        "occurred_at": iso(episode.started_at + timedelta(hours=3)),
        "external_id": "THEATRE-CASE-982",
        "quantities": [
            {"resource": "IMPLANT-KNEE", "quantity": "1", "unit_cost": "2200.50"},
            {"resource": "THEATRE", "quantity": "95.5"},
        ],
    }
    client = api(sam)

    first = client.post(f"/api/v1/episodes/{episode.pk}/events/", payload, format="json")
    again = client.post(f"/api/v1/episodes/{episode.pk}/events/", payload, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert {**first.json(), "created": False} == again.json()
    listed = api(alice).get(f"/api/v1/episodes/{episode.pk}/events/").json()["results"]
    assert [{**first.json(), "created": None}] == [{**row, "created": None} for row in listed]


def test_recording_an_event_costs_a_fixed_number_of_queries(api, sam, alice, org, django_assert_max_num_queries):
    """Token, scope, idempotency key, the event, the episode's change marker and the audit event:
    no look-ups of rows already in hand and no re-read for the response (30 queries before).

    Inside the test's transaction, the claim's BEGIN/COMMIT are a savepoint and its release."""
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    client = api(sam)
    warm = {"step": "PREOP", "occurred_at": iso(timezone.now()), "external_id": "PAS-76"}
    assert client.post(f"/api/v1/episodes/{episode.pk}/events/", warm, format="json").status_code == 201

    with django_assert_max_num_queries(25):
        response = client.post(
            f"/api/v1/episodes/{episode.pk}/events/",
            {"step": "PREOP", "occurred_at": iso(timezone.now()), "external_id": "PAS-77"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="pin-queries-1",
        )
    assert response.status_code == 201, response.content
    assert response.json()["step"] == "PREOP"


def test_it_refuses_an_event_outside_its_episode(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=5)
    start = timezone.localtime(episode.started_at).strftime("%-d %b %Y %H:%M")

    before = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": "PHYSIO", "occurred_at": iso(episode.started_at - timedelta(days=400))},
        format="json",
    )

    assert before.status_code == 400
    assert error_fields(before) == {"occurred_at": f"This is before the episode started ({start})."}
    ended = episode.started_at + timedelta(hours=3)
    closed = api(alice).post(f"/api/v1/episodes/{episode.pk}/close/", {"ended_at": iso(ended)}, format="json")
    assert closed.status_code == 200, closed.json()
    after = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": "PHYSIO", "occurred_at": iso(ended + timedelta(hours=1))},
        format="json",
    )
    assert error_fields(after) == {
        "occurred_at": f"This is after the episode ended ({timezone.localtime(ended).strftime('%-d %b %Y %H:%M')})."
    }
    # Documentation entered late, of something within the stay, is taken.
    late = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/",
        {"step": "PHYSIO", "occurred_at": iso(ended - timedelta(hours=1))},
        format="json",
    )
    assert late.status_code == 201
    assert StepEvent.objects.filter(episode=episode).count() == 1


def test_json_nested_too_deeply_is_a_clear_400_not_a_500(api, sam, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    response = api(sam).post(
        f"/api/v1/episodes/{episode.pk}/events/", "[" * 100000 + "]" * 100000, content_type="application/json"
    )

    assert response.status_code == 400
    assert problem(response)["detail"] == "The body is not JSON this API reads: it is nested too deeply."
