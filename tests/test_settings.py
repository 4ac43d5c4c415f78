"""Production settings fail loudly when incomplete, and pass Django's deployment checks when complete."""

import json
import os
import secrets
import subprocess
import sys

from tests.conftest import ROOT

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


def run_manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE is set by the browser tests' fixture; a deployment never has it.
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", ASYNC_UNSAFE}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def production_env(**overrides: str) -> dict[str, str]:
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "commonpath.example.nhs.uk"}
    env.update(overrides)
    return env


def test_it_refuses_to_start_in_production_without_a_secret_key():
    # An empty value rather than a missing one, so that a developer's .env cannot fill it in.
    result = run_manage("check", **production_env(SECRET_KEY=""))

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set. Production mode (DEBUG=false)" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr


def test_it_refuses_to_start_in_production_without_allowed_hosts():
    result = run_manage("check", **production_env(ALLOWED_HOSTS=""))

    assert result.returncode != 0
    assert "ImproperlyConfigured: ALLOWED_HOSTS is not set." in result.stderr


def test_it_passes_the_deployment_checks_with_no_warning_in_production():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_fails_the_deployment_checks_with_a_short_secret_key():
    """Proves the check above can fail: Django flags a weak key as a warning."""
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production_env(SECRET_KEY="short"))

    assert result.returncode != 0
    assert "security.W009" in result.stderr + result.stdout


def test_it_runs_embedded_with_nothing_set(tmp_path):
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="true", SECRET_KEY="")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[true, "django.db.backends.sqlite3", true]'


CONCURRENT_WRITERS = """
import json, threading, time
from concurrent.futures import ThreadPoolExecutor
from django.db import connection, connections, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE signins (n integer)")
start = threading.Barrier(10)

def sign_in(n):
    # What a sign-in does: read (the account, its lockout) and then write (the audit event, the session).
    try:
        start.wait()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM signins")
            time.sleep(0.05)
            cursor.execute("INSERT INTO signins VALUES (%s)", [n])
        return "ok"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        connections.close_all()

with ThreadPoolExecutor(10) as pool:
    print("RESULT" + json.dumps(list(pool.map(sign_in, range(10)))))
"""


def test_the_embedded_database_lets_ten_people_sign_in_at_once(tmp_path):
    # SQLite refuses at once a transaction that read and then wants to write while another holds
    # the write lock ("database is locked", whatever the timeout): 8 of 10 demo sign-ins failed.
    result = run_manage(
        "shell", "-c", CONCURRENT_WRITERS, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DEBUG="true"
    )

    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    assert json.loads(line[len("RESULT") :]) == ["ok"] * 10
