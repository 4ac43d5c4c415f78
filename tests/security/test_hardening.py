"""Check 8: in production mode, every response carries the hardening headers and cookies.

Production settings are computed at import time from the environment, so these
tests start a fresh process with DEBUG=false and inspect what it answers.
"""

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import PASSWORD, ROOT

pytestmark = [pytest.mark.slow]

PROBE = """
import json
import os
from django.test import Client

def facts(response):
    return {
        "status": response.status_code,
        "headers": {k.lower(): v for k, v in response.headers.items()},
        "cookies": {
            name: {"secure": bool(m["secure"]), "httponly": bool(m["httponly"]), "samesite": m["samesite"]}
            for name, m in response.cookies.items()
        },
        "body": b"".join(response.streaming_content if response.streaming else [response.content]).decode(
            errors="replace"
        )[:3000],
    }

from accounts.models import Membership, OrgUnit, User
from accounts.services import org_unit_create

unit = org_unit_create(code="RCH", name="Riverside Trust", kind=OrgUnit.Kind.TRUST)
alice = User.objects.create_user(username="alice", password=os.environ["PROBE_PASSWORD"])
Membership.objects.create(user=alice, org_unit=unit, role=Membership.Role.CLINICIAN)

out = {}
user = Client()
out["login_page"] = facts(user.get("/accounts/login/", secure=True))
out["sign_in"] = facts(user.post("/accounts/login/", {"username": "alice", "password": os.environ["PROBE_PASSWORD"]}, secure=True))
out["home"] = facts(user.get("/", secure=True))
out["api"] = facts(user.get("/api/v1/org-units/", secure=True))
out["docs_signed_in"] = facts(user.get("/api/v1/docs/", secure=True))
anonymous = Client()
out["docs_anonymous"] = facts(anonymous.get("/api/v1/docs/", secure=True))
out["schema_anonymous"] = facts(anonymous.get("/api/v1/schema/", secure=True))
out["plain_http"] = facts(anonymous.get("/accounts/login/"))
out["static"] = facts(anonymous.get("/static/css/commonpath.css", secure=True))
print("PROBE" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """What a production process answers, probed once for this module.

    It runs on its own fresh SQLite database, migrated as a deployment would be,
    so that nothing it writes reaches the tests' database.
    """
    tmp = tmp_path_factory.mktemp("production")
    env = dict(os.environ)
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="testserver,commonpath.example.nhs.uk",
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        STATIC_ROOT=str(tmp / "static"),
        PROBE_PASSWORD=PASSWORD,
    )
    for name in ("CELERY_BROKER_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"):  # the last: set by browser tests
        env.pop(name, None)
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=300)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE"))
    return json.loads(line[len("PROBE") :])


PAGES = ["login_page", "sign_in", "home", "api", "docs_signed_in", "docs_anonymous", "schema_anonymous"]


@pytest.mark.parametrize("page", PAGES)
def test_it_sends_hsts_nosniff_referrer_policy_and_no_framing_on_every_answer(production, page):
    headers = production[page]["headers"]

    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("page", PAGES)
def test_it_sends_a_content_security_policy_without_inline_script_or_style(production, page):
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in production[page]["headers"]["content-security-policy"].split(";")
    )

    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'self'"
    assert policy["form-action"] == "'self'"


@pytest.mark.parametrize("page", ["login_page", "sign_in", "home", "api", "docs_signed_in"])
def test_it_forbids_storing_clinical_pages_and_api_answers(production, page):
    assert production[page]["headers"]["cache-control"] == "no-store"


def test_it_lets_browsers_cache_static_files(production):
    assert production["static"]["status"] == 200
    assert "no-store" not in production["static"]["headers"]["cache-control"]


def test_it_sets_session_and_csrf_cookies_secure_httponly_and_samesite(production):
    cookies = production["sign_in"]["cookies"]

    assert production["sign_in"]["status"] == 302
    for name in ("sessionid", "csrftoken"):
        assert cookies[name] == {"secure": True, "httponly": True, "samesite": "Lax"}, name


def test_it_redirects_plain_http_to_https(production):
    assert production["plain_http"]["status"] == 301
    assert production["plain_http"]["headers"]["location"] == "https://testserver/accounts/login/"


def test_it_requires_sign_in_for_the_api_docs_and_schema(production):
    assert production["docs_anonymous"]["status"] == 302
    assert production["docs_anonymous"]["headers"]["location"] == "/accounts/login/?next=/api/v1/docs/"
    assert "swagger" not in production["docs_anonymous"]["body"].lower()
    assert production["schema_anonymous"]["status"] == 401
    assert "openapi" not in production["schema_anonymous"]["body"]
    assert production["docs_signed_in"]["status"] == 200
