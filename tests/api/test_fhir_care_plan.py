"""GET /api/v1/fhir/CarePlan/{episode id}: a FHIR R4 CarePlan, validated with fhir.resources."""

from datetime import timedelta

from fhir.resources.R4B.careplan import CarePlan

from accounts.models import AuditEvent
from tests.api.factories import build_tkr, record_variance, start_episode
from variances import services


def test_it_serves_a_valid_r4_care_plan_with_activity_status(api, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    at = episode.started_at
    services.event_record(
        episode=episode,
        step=episode.version.steps.get(code="PREOP"),
        occurred_at=at + timedelta(hours=1),
        source="api",
        actor=alice,
    )
    services.event_record(
        episode=episode, activity="CT head", occurred_at=at + timedelta(hours=2), source="api", actor=alice
    )
    record_variance(episode, alice, step="SURGERY")

    response = api(alice).get(f"/api/v1/fhir/CarePlan/{episode.pk}")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    plan = CarePlan.model_validate(response.json())
    assert (plan.id, plan.status, plan.intent) == (str(episode.pk), "active", "plan")
    assert plan.instantiatesCanonical == ["http://testserver/api/v1/fhir/PlanDefinition/TKR|1"]
    assert plan.subject.identifier.value == "PT-0001A"
    by_code = {a.detail.code.coding[0].code: a.detail for a in plan.activity if a.detail.code.coding}
    assert by_code["PREOP"].status == "completed"
    assert by_code["SURGERY"].status == "scheduled"  # not done yet, window known from the start
    assert by_code["SURGERY"].statusReason.coding[0].code == "service-not-available"
    assert by_code["PHYSIO"].status == "not-started"  # anchored on surgery, which has not happened
    assert by_code["STAY"].status == "not-started"
    unplanned = [a.detail for a in plan.activity if not a.detail.code.coding]
    assert [(d.code.text, d.status) for d in unplanned] == [("CT head", "completed")]
    assert "Theatre list overran" not in response.content.decode()  # free-text rationale stays out
    assert AuditEvent.objects.filter(action="episode.read", episode_ref="PT-0001A").count() == 1


def test_it_cancels_what_a_closed_episode_never_did(api, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice, hours_ago=30)
    services.episode_close(episode=episode, ended_at=episode.started_at + timedelta(hours=20), actor=alice)

    plan = CarePlan.model_validate(api(alice).get(f"/api/v1/fhir/CarePlan/{episode.pk}").json())

    assert plan.status == "completed"
    assert {a.detail.status for a in plan.activity} == {"cancelled"}
    assert plan.period.end is not None


def test_it_hides_care_plans_of_other_units_and_from_managers(api, alice, dora, carol, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    assert api(dora).get(f"/api/v1/fhir/CarePlan/{episode.pk}").status_code == 404
    assert api(carol).get(f"/api/v1/fhir/CarePlan/{episode.pk}").status_code == 403
