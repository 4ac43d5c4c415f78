"""GET /api/v1/fhir/metadata: the server's FHIR R4 CapabilityStatement, validated with fhir.resources."""

import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from config.fhir import STATEMENT_DATE
from tests.api.factories import build_tkr, start_episode

METADATA = "/api/v1/fhir/metadata"
PROJECT_VERSION = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
    "version"
]
# The statement's content, less what depends on the deployment, when config.fhir.STATEMENT_DATE was last set.
CONTENT_WHEN_DATED = "c5af7ee03a2f3cfd"


def resources_of(statement: dict) -> dict[str, dict]:
    [rest] = statement["rest"]
    return {entry["type"]: entry for entry in rest["resource"]}


def test_it_serves_a_valid_r4_capability_statement(api, django_assert_num_queries):
    with django_assert_num_queries(0):  # nothing from the database: no record can be in it
        response = api().get(METADATA)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    statement = CapabilityStatement.model_validate(response.json())  # raises if not valid R4(B)
    assert (statement.fhirVersion, statement.kind, statement.status) == ("4.0.1", "instance", "active")
    assert statement.format == ["application/fhir+json", "json"]
    assert (statement.software.name, statement.software.version) == ("CommonPath", PROJECT_VERSION)
    assert statement.implementation.url == "http://testserver/api/v1/fhir"
    assert statement.publisher == "CommonPath"
    assert response.json()["date"] == STATEMENT_DATE
    [rest] = statement.rest
    assert rest.mode == "server"
    assert {service.text.split(":")[0] for service in rest.security.service} == {"Bearer token", "Session"}
    assert rest.security.cors is None  # no CORS headers are sent, so none are promised


def test_it_declares_a_read_of_each_resource_and_nothing_more(api):
    resources = resources_of(api().get(METADATA).json())

    assert set(resources) == {"PlanDefinition", "CarePlan"}
    for entry in resources.values():
        assert entry["interaction"] == [{"code": "read"}]
        assert "searchParam" not in entry and "searchInclude" not in entry
        assert (entry["versioning"], entry["readHistory"]) == ("no-version", False)
        assert entry["profile"] == f"http://hl7.org/fhir/StructureDefinition/{entry['type']}"
    assert resources["CarePlan"]["documentation"].startswith("An episode as a FHIR R4 CarePlan")


def fhir_routes() -> set[str]:
    """The routes under the FHIR base, walked here apart from the view's own walk."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/v1/fhir/"):
                yield route.removeprefix("api/v1/fhir/")

    return set(walk(get_resolver().url_patterns)) - {"metadata"}


def test_it_lists_every_fhir_route_and_only_those(api, alice, org):
    """A FHIR endpoint added without a read the statement can declare, or a declared read that answers
    nothing, fails here."""
    version = build_tkr(org["ORTHO"])
    episode = start_episode(version, org["ORTHO"], alice)
    ids = {"PlanDefinition": "TKR", "CarePlan": episode.pk}  # a record of each type, to read it back
    statement = api().get(METADATA).json()
    declared = resources_of(statement)
    routes = fhir_routes()

    assert len(routes) >= 2
    routed = set()
    for route in routes:
        read = re.fullmatch(r"([A-Za-z]+)/<(?:\w+:)?\w+>", route)
        assert read, f"fhir/{route} is not a read ([type]/[id]): make the CapabilityStatement declare it"
        routed.add(read[1])
    assert routed == set(declared)
    client = api(alice)
    for resource_type in declared:
        assert resource_type in ids, f"give the test a {resource_type} to read back"
        read = client.get(f"{statement['implementation']['url']}/{resource_type}/{ids[resource_type]}")
        assert read.status_code == 200, resource_type
        assert read.json()["resourceType"] == resource_type


def test_its_base_url_is_the_one_the_client_called(api, alice, org, settings):
    settings.ALLOWED_HOSTS = ["fhir.trust.example"]
    build_tkr(org["ORTHO"])

    statement = api().get(METADATA, HTTP_HOST="fhir.trust.example", secure=True).json()
    plan = api(alice).get("/api/v1/fhir/PlanDefinition/TKR", HTTP_HOST="fhir.trust.example", secure=True).json()

    assert statement["implementation"]["url"] == "https://fhir.trust.example/api/v1/fhir"
    assert plan["url"] == f"{statement['implementation']['url']}/PlanDefinition/TKR"


def test_a_signed_in_caller_costs_only_the_tokens_look_up(api, alice, django_assert_num_queries):
    client = api(alice)

    with django_assert_num_queries(2):  # the token, and its last-used mark (once a minute)
        assert client.get(METADATA).status_code == 200
    with django_assert_num_queries(1):
        assert client.get(METADATA).status_code == 200


@pytest.mark.parametrize("persona", ["alice", "carol", "nobody"])
def test_it_answers_every_caller_alike(api, persona, request):
    """Signed in or not, with any role or none: the statement holds nothing one caller may see and another not."""
    anonymous = api().get(METADATA)

    signed_in = api(request.getfixturevalue(persona)).get(METADATA)

    assert signed_in.status_code == 200
    assert signed_in.json() == anonymous.json()


def test_it_still_refuses_a_bad_token(api, db):
    response = api().get(METADATA, HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/fhir+json"
    [issue] = response.json()["issue"]
    assert issue["code"] == "login"
    assert "The token is unknown, expired or revoked." in issue["diagnostics"]


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"HTTP_ACCEPT": "application/fhir+xml"}, "", "JSON only (application/fhir+json); the Accept header asked for"),
        ({}, "?_format=xml", "This server answers FHIR in JSON only (_format=json), not _format=xml."),
    ],
)
def test_it_refuses_xml_with_406_as_an_operation_outcome(api, headers, query, expected):
    response = api().get(f"{METADATA}{query}", **headers)

    assert response.status_code == 406
    assert response["Content-Type"] == "application/fhir+json"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "not-supported")
    assert expected in issue["diagnostics"]


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"HTTP_ACCEPT": "application/fhir+json;q=0.9, application/fhir+xml"}, ""),
        ({"HTTP_ACCEPT": "application/json"}, ""),
        ({}, "?_format=json"),
        ({}, "?_format=application/fhir%2Bjson&mode=full"),
    ],
)
def test_it_serves_json_to_clients_that_take_it(api, headers, query):
    response = api().get(f"{METADATA}{query}", **headers)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    assert response.json()["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize(
    ("query", "field", "expected"),
    [
        ("?mode=terminology", "mode", "This server describes itself in full only (mode=full)."),
        ("?_summary=true", "_summary", "Unknown query parameter. This endpoint takes: _format, mode."),
    ],
)
def test_it_refuses_what_it_cannot_answer_rather_than_ignore_it(api, query, field, expected):
    response = api().get(f"{METADATA}{query}")

    assert response.status_code == 400
    [issue] = response.json()["issue"]
    assert issue["code"] == "invalid"
    assert issue["diagnostics"].startswith(f"{field}: {expected}")


def test_its_date_moves_on_when_its_content_changes(api):
    """FHIR: the date "should change when the substantive content of the capability statement changes"."""
    statement = api().get(METADATA).json()
    for deployment_specific in ("date", "software", "implementation"):
        del statement[deployment_specific]

    content = hashlib.sha256(json.dumps(statement, sort_keys=True).encode()).hexdigest()[:16]

    assert content == CONTENT_WHEN_DATED, (
        f"The CapabilityStatement changed: set config.fhir.STATEMENT_DATE to today's date and "
        f"CONTENT_WHEN_DATED to {content!r}."
    )


def test_the_schema_documents_it_as_open_to_anyone(api, alice):
    operation = api(alice).get("/api/v1/schema/?format=json").json()["paths"][METADATA]["get"]

    assert {} in operation["security"]  # credentials optional
    assert {p["name"] for p in operation["parameters"]} == {"_format", "mode"}
    assert "application/fhir+json" in operation["responses"]["200"]["content"]
    assert operation["responses"]["406"]["content"]["application/fhir+json"]["schema"]["properties"]["resourceType"][
        "enum"
    ] == ["OperationOutcome"]
    assert "403" not in operation["responses"]  # no role is refused
