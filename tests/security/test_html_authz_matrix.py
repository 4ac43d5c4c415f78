"""Check 1 (pages): every persona x every page x GET and POST against the policy in html_authz_matrix.json.

The role layer: a persona without one of the page's roles gets the generic 403
(and no record data), an anonymous visitor is sent to sign in, and a persona
with the role gets past the door (any answer but 403, never a server error).
Objects are made-up ids here, so the scope layer (own unit / other unit) is
checked where objects exist: tests/security/test_error_hygiene.py (forbidden
looks missing), tests/accounts/test_audit_reports.py, tests/api/test_authz_matrix.py
and the variances permission tests.
"""

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from accounts.permissions import roles_of
from tests.security.test_every_view_has_a_rule import application_views

MATRIX = json.loads((Path(__file__).parent / "html_authz_matrix.json").read_text())["pages"]
PERSONAS = ["alice", "dora", "bob", "carol", "fred", "erin", "sam", "sue", "nobody", "anonymous"]
DUMMY = {"int": 987654, "slug": "nope", "str": "NOPE-1"}


def pages():
    """(name, path) of every HTML page, with made-up values for its URL parameters."""
    for route, name, _ in application_views():
        if route.startswith("api/") or not name:
            continue
        kwargs = {key: DUMMY[conv or "str"] for conv, key in re.findall(r"<(?:(\w+):)?(\w+)>", route)}
        if "fmt" in kwargs:
            kwargs["fmt"] = "csv"
        yield name, reverse(name, kwargs=kwargs)


def test_it_states_the_policy_of_every_page():
    names = {name for name, _ in pages()}

    assert names - MATRIX.keys() == set(), "pages missing from html_authz_matrix.json"
    assert MATRIX.keys() - names == set(), "html_authz_matrix.json names pages that no longer exist"


def expected(policy: list[str], held: set[str] | None) -> str:
    if "public" in policy:
        return "open"
    if held is None:
        return "sign-in"
    if "signed-in" in policy or held & set(policy):
        return "open"
    return "forbidden"


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_it_lets_each_persona_through_exactly_the_doors_of_its_roles(persona, request, org):
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    held = None if user is None else roles_of(user)
    wrong = []
    for name, path in pages():
        for method in ("get", "post"):
            if name == "accounts:logout" and method == "post":
                continue  # signing out is tested in tests/accounts/test_login.py
            client = Client(raise_request_exception=False)
            if user is not None:
                client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
            response = getattr(client, method)(path)
            want = expected(MATRIX[name], held)
            status = response.status_code
            body = response.content.decode(errors="replace") if not response.streaming else ""
            if want == "sign-in":
                ok = status == 302 and response["Location"].startswith("/accounts/login/?next=")
            elif want == "forbidden":
                # 405 where a view checks the method before the role: it says nothing about any record.
                ok = (status == 403 and "Not available to you" in body) or (status == 405 and not body)
            else:
                # /healthz answers 503 by design when a configured broker has no worker.
                ok = (
                    status != 403
                    and (status < 500 or name == "healthz")
                    and not (status == 302 and response["Location"].startswith("/accounts/login/"))
                )
            if not ok:
                wrong.append(f"{method.upper()} {path} ({name}): expected {want}, got {status}")

    assert not wrong, f"{persona}:\n  " + "\n  ".join(wrong)
