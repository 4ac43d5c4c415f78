"""Check 3 (sign-in): 100 concurrent wrong passwords against a live server; the lockout holds.

Every attempt is counted and audited, none of them crashes the server, the
audit chain stays intact under concurrent writers, and afterwards even the
right password is refused until the cool-off ends.
"""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
import requests
from django.conf import settings
from django.db import connection

from accounts.audit import verify_chain
from accounts.models import AuditEvent, User
from tests.conftest import PASSWORD, require

# serial: its 50 clients hold about 50 of the cluster's 100 connections, as would another process's.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.serial, pytest.mark.django_db(transaction=True)]

ATTEMPTS = 100
# Concurrent clients: PostgreSQL's default of 100 connections is shared with the rest of
# the machine, and the live server opens one per request thread.
CLIENTS = 50


def attempt(url: str, password: str, start: threading.Barrier | None = None) -> int:
    with requests.Session() as session:
        page = session.get(url, timeout=60)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        if start is not None:
            start.wait(timeout=60)
        response = session.post(
            url,
            data={"username": "alice", "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": url},
            allow_redirects=False,
            timeout=60,
        )
        return response.status_code


def test_it_holds_the_lockout_under_100_concurrent_wrong_passwords(live_server, alice):
    # The embedded SQLite mode serves one user at a time; concurrency is PostgreSQL's job.
    require(connection.vendor == "postgresql", "concurrent sign-in needs PostgreSQL (DATABASE_URL)")
    url = f"{live_server.url}/accounts/login/"
    start = threading.Barrier(CLIENTS)
    checked = []
    real_check = User.check_password

    def counting_check(user, raw):  # the live server runs in this process: count real password checks
        checked.append(raw)
        return real_check(user, raw)

    with mock.patch.object(User, "check_password", counting_check), ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        statuses = list(pool.map(lambda i: attempt(url, f"wrong-{i}", start if i < CLIENTS else None), range(ATTEMPTS)))

    assert set(statuses) <= {200, 429}, f"unexpected answers: {sorted(set(statuses))}"
    # However the attempts interleave, only the first LIMIT guesses are ever checked.
    assert len(checked) <= settings.AXES_FAILURE_LIMIT, f"{len(checked)} passwords were checked"
    assert statuses.count(200) == settings.AXES_FAILURE_LIMIT - 1
    assert attempt(url, PASSWORD) == 429  # the right password, too late
    failures = AuditEvent.objects.filter(action="login", outcome="failure", object_id="alice").count()
    assert failures == ATTEMPTS + 1
    assert AuditEvent.objects.filter(action="login.locked_out").exists()
    assert not AuditEvent.objects.filter(action="login", outcome="success").exists()
    count, bad, reason = verify_chain()
    assert bad is None, reason
