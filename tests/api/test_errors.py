"""Errors are application/problem+json (RFC 9457) with a specific detail, per-field errors and no internals."""

import json
import logging

import pytest
from django.test import Client

from accounts.models import AuditEvent
from tests.api.conftest import problem


def test_it_answers_401_with_a_bearer_challenge_without_credentials(api, org):
    response = api().get("/api/v1/org-units/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    body = problem(response)
    assert body["title"] == "Unauthorized"
    assert "Authorization: Bearer" in body["detail"]
    assert body["request_id"] == response["X-Request-ID"]


def test_it_refuses_an_unknown_token_and_audits_the_failure(api, org):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Bearer cp_not-a-real-token")

    response = client.get("/api/v1/org-units/")

    assert response.status_code == 401
    assert problem(response)["detail"] == "The token is unknown, expired or revoked."
    failure = AuditEvent.objects.get(action="api.authenticate")
    assert failure.outcome == "failure"
    assert "cp_not-a-real-token" not in str(failure.detail)


def test_it_answers_403_naming_the_roles_needed_and_audits_the_denial(api, alice, org):
    response = api(alice).get("/api/v1/cost-rates/")

    assert response.status_code == 403
    assert problem(response)["detail"] == "Your role does not allow this. It needs one of: finance, admin"
    assert AuditEvent.objects.get(action="api.denied").actor_name == "alice"


def test_it_answers_unknown_api_paths_in_problem_json(api, alice):
    response = api(alice).get("/api/v1/nothing-here/")

    assert response.status_code == 404
    assert problem(response)["detail"].startswith("There is no such API endpoint.")
    for path in ("/api/v2/episodes/", "/api/"):
        other = api(alice).get(path)
        assert (other.status_code, other["Content-Type"]) == (404, "application/problem+json"), path
        assert problem(other)["detail"] == "There is no such API endpoint. See /api/v1/docs/ for the list."


def test_it_refuses_malformed_json_with_the_parser_message(api, alice):
    response = api(alice).generic("POST", "/api/v1/episodes/", '{"pathway": "TKR",', content_type="application/json")

    assert response.status_code == 400
    assert problem(response)["detail"].startswith("The body is not valid JSON")


def test_it_refuses_an_object_that_names_a_key_twice(api, alice):
    body = '{"pathway": "TKR", "patient_ref": "PT-1234A", "pathway": "HIP"}'

    response = api(alice).post("/api/v1/episodes/", body, content_type="application/json")

    assert response.status_code == 400
    assert problem(response)["detail"] == "The body is not valid JSON: the key 'pathway' is given twice in one object"


def test_it_refuses_a_body_over_the_size_limit_with_413(api, alice, settings):
    settings.API_MAX_BODY_BYTES = 1000

    response = api(alice).post("/api/v1/episodes/", {"patient_ref": "X" * 2000}, format="json")

    assert response.status_code == 413
    assert problem(response)["detail"] == "The request body is larger than the limit of 1,000 bytes."


def test_it_refuses_other_media_types_with_415(api, alice):
    response = api(alice).post("/api/v1/episodes/", "pathway=TKR", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert problem(response)["title"] == "Unsupported Media Type"


@pytest.mark.parametrize("accept", ["application/xml", "text/csv", "application/problem+json"])
@pytest.mark.parametrize("signed_in", [True, False])
def test_it_answers_406_in_problem_json_to_an_accept_header_it_cannot_serve(api, alice, accept, signed_in):
    client = api(alice) if signed_in else api()

    response = client.get("/api/v1/episodes/", HTTP_ACCEPT=accept)

    body = problem(response)
    assert response.status_code == 406
    assert body["title"] == "Not Acceptable"
    assert accept in body["detail"]


def test_it_hides_server_errors_behind_a_generic_problem_with_the_request_id(api, alice, monkeypatch, caplog):
    from accounts import api as accounts_api

    def explode(self):
        raise RuntimeError("SELECT secret FROM settings WHERE password='hunter2'")

    monkeypatch.setattr(accounts_api.OrgUnitList, "get_queryset", explode)

    with caplog.at_level(logging.ERROR, logger="commonpath.api"):
        response = api(alice).get("/api/v1/org-units/", HTTP_X_REQUEST_ID="trace-123")

    assert response.status_code == 500
    body = problem(response)
    text = response.content.decode()
    assert "hunter2" not in text and "RuntimeError" not in text and "SELECT" not in text
    assert body["request_id"] == "trace-123"
    assert "quote the request_id" in body["detail"]
    assert any("unhandled API error" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", ["put", "delete"])
def test_it_answers_405_with_allow_for_unsupported_methods(api, alice, method):
    response = getattr(api(alice), method)("/api/v1/org-units/")

    assert response.status_code == 405
    assert "GET" in response["Allow"]
    problem(response)


def test_it_lets_browser_sessions_read_and_needs_csrf_to_write(alice, org):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")

    assert browser.get("/api/v1/org-units/").status_code == 200
    without_token = browser.post("/api/v1/reports/", {}, content_type="application/json")
    assert without_token.status_code == 403
    assert "CSRF" in problem(without_token)["detail"]
    browser.get("/")  # any page with a form sets the CSRF cookie
    with_token = browser.post(
        "/api/v1/reports/",
        {"kind": "variance", "parameters": {"org_unit": "ORTHO", "date_from": "2025-04-01", "date_to": "2026-03-31"}},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert with_token.status_code == 202, with_token.content


def test_it_audits_a_refused_write_with_the_fields_at_fault(api, alice, org):
    response = api(alice).post("/api/v1/episodes/", {"pathway": "NOPE", "colour": "red"}, format="json")

    assert response.status_code == 400
    refused = AuditEvent.objects.get(action="api.write_refused")
    assert (refused.actor_name, refused.outcome, refused.object_id) == ("alice", "failure", "/api/v1/episodes/")
    assert {"pathway", "colour", "patient_ref"} <= set(refused.detail["fields"])
    assert "NOPE" not in str(refused.detail)  # field names only, never the values sent


def test_an_error_of_a_view_that_answers_yaml_is_still_json(api, org):
    response = api().get("/api/v1/schema/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["title"] == "Unauthorized"  # not the schema's YAML
