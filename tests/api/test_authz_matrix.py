"""The API authorisation matrix, kept as data in tests/api/authz_matrix.json.

For every entry (method, path, unit of the object) each persona's request must get
the status the matrix says. Denied answers (4xx) must be problem+json carrying no
record data; successful answers must carry no record of a unit outside what the
persona "sees". Every request runs in a savepoint that is rolled back, so each
persona meets the same world.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create
from costing.api import rate_etag
from costing.models import CostRate, financial_year_of
from costing.services import report_run_request
from pathways.models import Resource
from tests.api.factories import build_tkr, record_variance, start_episode
from variances import services
from variances.api import episode_etag, variance_etag
from variances.models import Episode

MATRIX = json.loads((Path(__file__).parent / "authz_matrix.json").read_text())
PERSONAS = MATRIX["personas"]
# Record data that must never reach a persona who does not see the unit it belongs to.
MARKERS = {
    "ORTHO": ["PT-ORTHO-1", "RATIONALE ORTHO 77"],
    "ED": ["PT-ED-1", "RATIONALE ED 88"],
}


def entry_id(entry) -> str:
    return f"{entry['method']} {entry['path']} [{entry['unit'] or '-'}]"


@pytest.fixture
def world(org, alice, bob, dora, carol, fred, erin, sam, sue, nobody):
    today = timezone.localdate()
    knee = build_tkr(org["ORTHO"], code="TKR")
    sepsis = build_tkr(org["ED"], code="SEPSIS-ED")
    Resource.objects.create(code="SPARE-ROOM", name="Spare room", kind="room", unit="minute")
    ortho = start_episode(knee, org["ORTHO"], alice, ref="PT-ORTHO-1")
    ed = start_episode(sepsis, org["ED"], dora, ref="PT-ED-1")
    # Discharged episodes, for what is done after discharge (their references carry the units' markers).
    ortho_closed = start_episode(knee, org["ORTHO"], alice, ref="PT-ORTHO-1-DONE", hours_ago=50)
    ed_closed = start_episode(sepsis, org["ED"], dora, ref="PT-ED-1-DONE", hours_ago=50)
    for closed, clinician in ((ortho_closed, alice), (ed_closed, dora)):
        services.episode_close(episode=closed, ended_at=timezone.now() - timedelta(hours=2), actor=clinician)
    users = {"alice": alice, "bob": bob, "dora": dora, "carol": carol, "fred": fred, "erin": erin}
    users.update({"sam": sam, "sue": sue, "nobody": nobody})
    return {
        "users": users,
        "tokens": {name: api_token_create(user=user)[1] for name, user in users.items()},
        "ORTHO": {
            "unit": "ORTHO",
            "pathway": "TKR",
            "episode": ortho.pk,
            "closed_episode": ortho_closed.pk,
            "variance": record_variance(ortho, alice, rationale="RATIONALE ORTHO 77"),
            "report": report_run_request(
                kind="variance",
                parameters={"org_unit": "ORTHO", "date_from": str(today - timedelta(days=90)), "date_to": str(today)},
                actor=alice,
            )[0].pk,
        },
        "ED": {
            "unit": "ED",
            "pathway": "SEPSIS-ED",
            "episode": ed.pk,
            "closed_episode": ed_closed.pk,
            "variance": record_variance(ed, dora, step="PREOP", rationale="RATIONALE ED 88"),
            "report": report_run_request(
                kind="variance",
                parameters={"org_unit": "ED", "date_from": str(today - timedelta(days=90)), "date_to": str(today)},
                actor=dora,
            )[0].pk,
        },
        "rate": CostRate.objects.get(resource__code="CONSULTANT"),
        "sam_token": ApiToken.objects.filter(user=sam).first().pk,
        "values": {
            "now": timezone.now().isoformat(),
            "today": str(today),
            "month_ago": str(today - timedelta(days=30)),
            "fy": financial_year_of(today),
        },
    }


def fill(template, values):
    """Placeholders like "{episode}" in paths and bodies; a whole-string placeholder keeps its type."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        return values[template[1:-1]]
    if isinstance(template, str):
        return template.format(**values)
    return template


def values_for(world, entry) -> dict:
    values = dict(world["values"])
    values["sam_token"] = world["sam_token"]
    values["rate"] = world["rate"].pk
    if entry["unit"]:
        objects = world[entry["unit"]]
        values.update({k: (v.pk if hasattr(v, "pk") else v) for k, v in objects.items()})
    return values


@pytest.mark.parametrize("entry", MATRIX["entries"], ids=entry_id)
def test_it_answers_each_persona_as_the_matrix_says(world, entry):
    assert set(entry["expect"]) == set(PERSONAS) == {*world["tokens"], "anonymous"}
    values = values_for(world, entry)
    path = fill(entry["path"], values)
    body = fill(entry.get("body"), values)
    failures = []
    for persona, expected in entry["expect"].items():
        client = APIClient()
        if persona != "anonymous":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens'][persona]}")
        headers = {}
        if entry.get("if_match") == "variance":
            headers["HTTP_IF_MATCH"] = variance_etag(world[entry["unit"]]["variance"])
        elif entry.get("if_match") == "rate":
            headers["HTTP_IF_MATCH"] = rate_etag(world["rate"])
        elif entry.get("if_match") == "closed_episode":
            headers["HTTP_IF_MATCH"] = episode_etag(Episode.objects.get(pk=values["closed_episode"]))
        with transaction.atomic():
            response = client.generic(
                entry["method"],
                path,
                json.dumps(body) if body is not None else "",
                content_type="application/json",
                **headers,
            )
            transaction.set_rollback(True)
        text = response.content.decode()
        if response.status_code != expected:
            failures.append(f"{persona}: expected {expected}, got {response.status_code}: {text[:200]}")
            continue
        if response.status_code >= 400:
            leaked = [m for markers in MARKERS.values() for m in markers if m in text]
            # FHIR endpoints err as FHIR clients read errors: an OperationOutcome.
            error_type = "application/fhir+json" if "/fhir/" in path else "application/problem+json"
            if response["Content-Type"] != error_type or leaked or '"results"' in text:
                failures.append(f"{persona}: denial carries record data or is not a problem: {text[:200]}")
        else:
            hidden = [unit for unit in MARKERS if unit not in PERSONAS[persona]["sees"]]
            leaked = [m for unit in hidden for m in MARKERS[unit] if m in text]
            if leaked:
                failures.append(f"{persona}: received {leaked} from a unit it may not see")
    assert not failures, "\n".join(failures)


def test_it_lists_only_rows_of_the_callers_units(world):
    """Beyond markers: every row of every list names a unit the persona sees."""
    for persona in ("alice", "dora", "sam", "sue", "bob"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens'][persona]}")
        sees = set(PERSONAS[persona]["sees"])
        allowed = {"ORTHO": {"ORTHO", "ORTHO-W7"}, "ED": {"ED"}}
        units = set().union(*(allowed[u] for u in sees))
        for url in ("/api/v1/episodes/", "/api/v1/variances/"):
            rows = client.get(url).json()["results"]
            assert rows, f"{persona} sees nothing at {url}"
            assert {row["org_unit"] for row in rows} <= units, (persona, url)


def api_routes(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from api_routes(pattern, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            yield route, pattern.callback


def test_it_gives_every_api_view_an_explicit_access_rule():
    routes = list(api_routes())
    assert len(routes) >= 20
    for route, callback in routes:
        rule = getattr(callback, "access_rule", None)
        assert rule, f"{route} has no access rule"
        if rule[0] == "roles":
            assert rule[1], f"{route} names no roles: it would refuse everyone, or worse"


def test_it_covers_every_operation_of_the_schema(api, erin):
    paths = api(erin).get("/api/v1/schema/?format=json").json()["paths"]
    operations = {(method.upper(), path) for path, item in paths.items() for method in item if method != "parameters"}
    in_matrix = set()
    for entry in MATRIX["entries"]:
        schema_path = (
            entry["path"]
            .replace("{episode}", "{id}")
            .replace("{closed_episode}", "{id}")
            .replace("{variance}", "{id}")
            .replace("{report}", "{id}")
            .replace("{rate}", "{id}")
            .replace("{sam_token}", "{id}")
            .replace("{pathway}", "{code}")
            .replace("versions/1/", "versions/{number}/")
        )
        in_matrix.add((entry["method"], schema_path))

    assert operations - in_matrix == set(), "add these operations to tests/api/authz_matrix.json"
