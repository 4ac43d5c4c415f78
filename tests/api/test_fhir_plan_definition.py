"""GET /api/v1/fhir/PlanDefinition/{code}: a FHIR R4 PlanDefinition, validated with fhir.resources."""

import pytest
from fhir.resources.R4B.plandefinition import PlanDefinition

from pathways.fhir import fhir_name
from tests.api.factories import build_tkr


def test_it_serves_a_valid_r4_plan_definition_of_the_published_version(api, alice, org):
    build_tkr(org["ORTHO"])

    response = api(alice).get("/api/v1/fhir/PlanDefinition/TKR", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    resource = PlanDefinition.model_validate(response.json())  # raises if not valid R4(B)
    assert resource.id == "TKR"
    assert resource.status == "active"
    assert resource.version == "1"
    assert resource.url == "http://testserver/api/v1/fhir/PlanDefinition/TKR"
    assert [stage.title for stage in resource.action] == ["Admission and surgery", "Ward and rehabilitation"]
    steps = {a.id: a for stage in resource.action for a in stage.action}
    assert list(steps) == ["PREOP", "SURGERY", "STAY", "PHYSIO"]
    surgery = steps["SURGERY"]
    assert surgery.code[0].coding[0].code == "SURGERY"
    assert surgery.requiredBehavior == "must"
    assert (surgery.timingRange.low.value, surgery.timingRange.high.value) == (60, 1440)
    assert surgery.timingRange.low.code == "min"
    assert [(r.actionId, r.relationship) for r in surgery.relatedAction] == [("PREOP", "after")]
    assert surgery.documentation[0].display == "NICE NG157"
    assert {p.role.coding[0].code for p in surgery.participant} == {"THEATRE", "CONSULTANT", "THEATRE-NURSE"}
    physio = steps["PHYSIO"]
    assert physio.relatedAction[0].actionId == "SURGERY"
    assert physio.relatedAction[0].relationship == "after-end"
    assert physio.relatedAction[0].offsetRange.high.value == 1440
    stay = steps["STAY"]
    assert stay.timingTiming.repeat.periodUnit == "d"
    assert stay.timingTiming.repeat.count == 3


def test_it_answers_404_as_an_operation_outcome_for_an_unknown_pathway(api, alice, org):
    response = api(alice).get("/api/v1/fhir/PlanDefinition/NOPE")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/fhir+json"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "not-found")
    assert issue["diagnostics"].startswith(
        "No published pathway with this identifier is available to you. (request_id "
    )


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        (
            {"HTTP_ACCEPT": "application/fhir+xml"},
            "",
            "This server answers FHIR in JSON only (application/fhir+json); the Accept header asked for "
            "application/fhir+xml.",
        ),
        ({}, "?_format=xml", "This server answers FHIR in JSON only (_format=json), not _format=xml."),
    ],
)
def test_it_refuses_xml_with_406_rather_than_answer_json_nobody_asked_for(api, alice, org, headers, query, expected):
    build_tkr(org["ORTHO"])

    response = api(alice).get(f"/api/v1/fhir/PlanDefinition/TKR{query}", **headers)

    assert response.status_code == 406
    [issue] = response.json()["issue"]
    assert issue["code"] == "not-supported"
    assert expected in issue["diagnostics"]


@pytest.mark.parametrize(
    ("headers", "query"),
    [({"HTTP_ACCEPT": "application/fhir+json;q=0.9, application/fhir+xml"}, ""), ({}, "?_format=json"), ({}, "")],
)
def test_it_serves_json_to_clients_that_take_it(api, alice, org, headers, query):
    build_tkr(org["ORTHO"])

    response = api(alice).get(f"/api/v1/fhir/PlanDefinition/TKR{query}", **headers)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    assert response.json()["name"] == "Tkr"


def test_its_name_follows_fhir_rule_inv_0_whatever_the_code():
    assert [fhir_name(code) for code in ("TKR", "HIP-FRACTURE", "2WW-BREAST", "SEPSIS-ED")] == [
        "Tkr",
        "HipFracture",
        "Pathway2wwBreast",
        "SepsisEd",
    ]


def test_it_requires_a_token(api, org):
    build_tkr(org["ORTHO"])

    response = api().get("/api/v1/fhir/PlanDefinition/TKR")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert "action" not in response.json()
