"""/healthz: 200 when the database, the broker and a worker answer; 503 with the failing part named."""

import json
import os
import socket
import subprocess
import sys
import tempfile

import pytest
from django.urls import reverse

from tests.conftest import ROOT, database_url_for_subprocess

SCRIPT = """
import json
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.json(), "type": response["Content-Type"]}))
"""


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable_database_url() -> str:
    """The tests' database, or (SQLite in memory cannot be shared with another process) a file."""
    from django.db import connection

    if connection.vendor == "sqlite":
        return f"sqlite:///{tempfile.gettempdir()}/commonpath-healthz.sqlite3"
    return database_url_for_subprocess()


def healthz_in_subprocess(**env_overrides: str) -> dict:
    """GET /healthz in a fresh process whose settings come from ``env_overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL", "REDIS_URL"}}
    env.update(DEBUG="true", DATABASE_URL=reachable_database_url(), CONN_MAX_AGE="0")
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.broker
def test_it_is_healthy_with_the_database_the_broker_and_a_worker_up(client, celery_worker_process):
    celery_worker_process()

    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "up"
    assert body["broker"] == {"status": "up"}
    assert body["worker"] == {"status": "up", "count": 1}


@pytest.mark.broker
def test_it_is_degraded_when_the_broker_is_up_but_no_worker_answers(client, live_broker, transactional_db):
    from django.core.cache import cache

    cache.delete("healthz:workers")

    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json()["worker"] == {"status": "down", "count": 0}


def test_it_answers_503_naming_the_broker_when_the_broker_port_is_closed(db):
    result = healthz_in_subprocess(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0")

    assert result["status"] == 503
    assert result["type"] == "application/json"
    body = result["body"]
    assert body["status"] == "degraded"
    assert body["database"]["status"] == "up"
    assert body["broker"]["status"] == "down"
    assert body["broker"]["error"]  # the exception's class name, never a URL or a password


def test_it_answers_503_naming_the_database_when_the_database_is_down(db):
    result = healthz_in_subprocess(DATABASE_URL=f"postgres://commonpath@127.0.0.1:{closed_port()}/commonpath")

    assert result["status"] == 503
    assert result["body"]["database"] == {"status": "down", "error": "OperationalError"}


def test_it_is_healthy_embedded_with_tasks_in_process(db):
    result = healthz_in_subprocess()

    assert result["status"] == 200
    assert result["body"]["broker"] == {"status": "not configured", "mode": "tasks run in-process"}
    assert result["body"]["worker"] == {"status": "in-process"}


def test_it_needs_no_login_and_leaks_no_configuration(client, db):
    response = client.get(reverse("healthz"))

    text = response.content.decode()
    assert response.status_code in (200, 503)
    assert "redis://" not in text
    assert "postgres://" not in text
    assert response["Cache-Control"] == "no-store"
