"""The OpenAPI schema (served, and committed in docs/openapi.yaml) and the Swagger UI docs page."""

import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.management import call_command

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_it_keeps_the_committed_schema_in_step_with_the_code(tmp_path):
    generated = tmp_path / "openapi.yaml"

    call_command("spectacular", "--file", str(generated), "--validate", "--fail-on-warn")

    assert COMMITTED.read_text() == generated.read_text(), (
        "docs/openapi.yaml differs from the schema the code generates: run `make schema` and commit it."
    )


def test_it_serves_the_schema_as_json_when_asked(api, alice):
    client = api(alice)

    by_format = client.get("/api/v1/schema/?format=json")
    by_accept = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")

    for response in (by_format, by_accept):
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/")
        assert "json" in response["Content-Type"]
        schema = response.json()
        assert schema["openapi"].startswith("3.")
        assert "/api/v1/episodes/{id}/events/" in schema["paths"]
        assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert client.get("/api/v1/schema/").content.startswith(b"openapi:")  # YAML by default


def test_it_documents_every_endpoint_of_the_contract(api, alice):
    paths = api(alice).get("/api/v1/schema/?format=json").json()["paths"]

    expected = {
        "/api/v1/pathways/": {"get"},
        "/api/v1/pathways/{code}/": {"get"},
        "/api/v1/pathways/{code}/versions/{number}/": {"get"},
        "/api/v1/episodes/": {"get", "post"},
        "/api/v1/episodes/{id}/": {"get"},
        "/api/v1/episodes/{id}/close/": {"post"},
        "/api/v1/episodes/{id}/outcomes/": {"post"},
        "/api/v1/episodes/{id}/events/": {"get", "post"},
        "/api/v1/variances/": {"get", "post"},
        "/api/v1/variances/{id}/": {"get", "patch"},
        "/api/v1/variances/{id}/history/": {"get"},
        "/api/v1/reason-codes/": {"get"},
        "/api/v1/org-units/": {"get"},
        "/api/v1/cost-rates/": {"get", "post"},
        "/api/v1/cost-rates/{id}/": {"get", "patch"},
        "/api/v1/reports/": {"post"},
        "/api/v1/reports/{id}/": {"get"},
        "/api/v1/fhir/PlanDefinition/{code}": {"get"},
        "/api/v1/fhir/CarePlan/{id}": {"get"},
        "/api/v1/fhir/metadata": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    patch = paths["/api/v1/variances/{id}/"]["patch"]
    assert {"412", "428"} <= set(patch["responses"])
    assert any(p["name"] == "If-Match" and p["required"] for p in patch["parameters"])
    outcomes = paths["/api/v1/episodes/{id}/outcomes/"]["post"]
    assert {"409", "412", "428"} <= set(outcomes["responses"])
    assert set(outcomes["responses"]["200"]["headers"]) == {"ETag", "Idempotent-Replayed"}
    assert any(p["name"] == "If-Match" and p["required"] for p in outcomes["parameters"])
    post = paths["/api/v1/episodes/"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert "application/problem+json" in post["responses"]["400"]["content"]
    assert "429" in paths["/api/v1/reports/"]["post"]["responses"]


def test_the_headers_responses_carry_are_the_ones_the_schema_declares(api, alice, org):
    from tests.api.factories import build_tkr

    build_tkr(org["ORTHO"])
    client = api(alice)
    paths = client.get("/api/v1/schema/?format=json").json()["paths"]
    body = {"pathway": "TKR", "patient_ref": "PT-7788A", "org_unit": "ORTHO", "started_at": "2026-01-05T09:00:00Z"}

    created = client.post("/api/v1/episodes/", body, format="json", HTTP_IDEMPOTENCY_KEY="schema-headers-1")
    replayed = client.post("/api/v1/episodes/", body, format="json", HTTP_IDEMPOTENCY_KEY="schema-headers-1")
    read = client.get(created["Location"])
    closed = client.post(
        f"{created['Location']}close/",
        {"ended_at": "2026-01-08T09:00:00Z", "discharge_destination": "usual-residence"},
        format="json",
        HTTP_IF_MATCH=read["ETag"],
    )

    def declared(path, method, status):
        return set(paths[path][method]["responses"][str(status)].get("headers", {}))

    assert (created.status_code, replayed.status_code, read.status_code, closed.status_code) == (201, 201, 200, 200)
    assert declared("/api/v1/episodes/", "post", 201) == {"Location", "ETag", "Idempotent-Replayed"}
    assert {"Location", "ETag"} <= set(created.headers) and replayed["Idempotent-Replayed"] == "true"
    assert declared("/api/v1/episodes/{id}/", "get", 200) == {"ETag"} and "ETag" in read.headers
    assert declared("/api/v1/episodes/{id}/close/", "post", 200) == {"ETag", "Idempotent-Replayed"}
    assert "412" in paths["/api/v1/episodes/{id}/close/"]["post"]["responses"]
    assert any(
        p["name"] == "If-Match" and not p.get("required", False)
        for p in paths["/api/v1/episodes/{id}/close/"]["post"]["parameters"]
    )


def test_it_keeps_the_schema_from_anonymous_callers(api):
    assert api().get("/api/v1/schema/").status_code == 401


def test_it_serves_swagger_ui_from_local_assets(client, alice):
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")

    page = client.get("/api/v1/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by CommonPath itself"
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset
    assert "<style>" not in html and "<script>" not in html  # the CSP forbids inline code
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200
    assert "/api/v1/schema/" in script.content.decode()


def test_it_sends_signed_out_browsers_from_the_docs_to_sign_in(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
