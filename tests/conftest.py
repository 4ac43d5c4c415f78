"""Shared fixtures: the org tree, named personas, live services.

Personas (healthchecks style): alice the clinician and bob her clinical lead in
Trauma & Orthopaedics; dora a clinician in the Emergency Department (another
unit); carol the manager of the Surgery division; fred in finance; erin the
admin. Service accounts sam (ORTHO) and sue (ED) for the API.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import Membership, OrgUnit, User
from accounts.services import org_unit_create

Role = Membership.Role
ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct-horse-battery-9"


def require(condition: bool, reason: str) -> None:
    """Skip for lack of a service locally; under CI that is a failure, never a skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture
def org(db):
    units = {}
    for code, name, kind, parent in [
        ("RCH", "Riverside Trust", OrgUnit.Kind.TRUST, None),
        ("SURG", "Surgery", OrgUnit.Kind.DIVISION, "RCH"),
        ("MED", "Medicine", OrgUnit.Kind.DIVISION, "RCH"),
        ("ORTHO", "Trauma & Orthopaedics", OrgUnit.Kind.SPECIALTY, "SURG"),
        ("ORTHO-W7", "Ward 7", OrgUnit.Kind.WARD, "ORTHO"),
        ("EM", "Emergency Medicine", OrgUnit.Kind.SPECIALTY, "MED"),
        ("ED", "Emergency Department", OrgUnit.Kind.WARD, "EM"),
    ]:
        units[code] = org_unit_create(code=code, name=name, kind=kind, parent=units.get(parent))
    return units


def make_user(username, role, unit, *, kind=User.Kind.PERSON, display_name=""):
    user = User.objects.create_user(username=username, password=PASSWORD, kind=kind, display_name=display_name)
    if role:
        Membership.objects.create(user=user, org_unit=unit, role=role)
    if role == Role.ADMIN:
        user.is_staff = True
        user.is_superuser = True
        user.save()
    return user


@pytest.fixture
def alice(org):
    return make_user("alice", Role.CLINICIAN, org["ORTHO"], display_name="Dr Alice Adeyemi")


@pytest.fixture
def bob(org):
    return make_user("bob", Role.CLINICAL_LEAD, org["ORTHO"], display_name="Mr Bob Okafor")


@pytest.fixture
def dora(org):
    return make_user("dora", Role.CLINICIAN, org["ED"], display_name="Dr Dora Ek")


@pytest.fixture
def carol(org):
    return make_user("carol", Role.MANAGER, org["SURG"], display_name="Carol Singh")


@pytest.fixture
def fred(org):
    return make_user("fred", Role.FINANCE, org["RCH"], display_name="Fred Finance")


@pytest.fixture
def erin(org):
    return make_user("erin", Role.ADMIN, org["RCH"], display_name="Erin Admin")


@pytest.fixture
def sam(org):
    """Service account of the orthopaedic theatre system."""
    return make_user("sam-theatres", Role.CLINICIAN, org["ORTHO"], kind=User.Kind.SERVICE)


@pytest.fixture
def sue(org):
    """Service account of the emergency department system."""
    return make_user("sue-ed", Role.CLINICIAN, org["ED"], kind=User.Kind.SERVICE)


@pytest.fixture
def nobody(org):
    """Signed in, but holding no role anywhere."""
    return make_user("nobody", None, None)


def login(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


# --- Parallel and serial passes ---------------------------------------------------

# `make test` runs the suite in two passes: everything else on several pytest-xdist
# workers, each with its own test database; then the serial tests, alone. A test is
# serial when it starts a real Celery worker (every worker consumes the one queue on
# the shared broker, so a worker started for one test database would take tasks sent
# for another), restarts PostgreSQL and Redis under everyone's feet, or opens about 50
# connections at once (two such tests together would meet the cluster's limit of 100).
SERIAL_FIXTURES = {"live_broker", "celery_worker_process"}


def pytest_configure(config):
    # Each test process keeps a cache of its own whatever CACHE_URL says: tests clear the cache
    # (API throttles), and a shared Redis cache would be cleared under another worker's feet.
    # tests/test_scaling_out.py checks the shared cache in processes of its own.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("broker") or SERIAL_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.serial)


def in_parallel_worker() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


# --- Live services ---------------------------------------------------------------


def broker_url() -> str:
    return settings.CELERY_BROKER_URL


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture
def live_broker():
    require(bool(broker_url()), "no CELERY_BROKER_URL configured: tasks run in-process")
    return broker_url()


def database_url_for_subprocess() -> str:
    """The URL of the database the tests are using right now (the test database)."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` subprocess on the test database and the live broker."""

    def __init__(self, queue_name: str, log_path: Path):
        self.queue_name = queue_name
        self.log_path = log_path
        self.proc = None

    def start(self, *, pool: str = "solo", settings: dict[str, str] | None = None) -> "WorkerProcess":
        """``settings``: environment settings for this worker only (e.g. a smaller batch size)."""
        env = {**os.environ, **(settings or {})}
        env["DATABASE_URL"] = database_url_for_subprocess()
        env["CELERY_BROKER_URL"] = broker_url()
        env["CONN_MAX_AGE"] = "0"
        env.pop("REDIS_URL", None)
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "--pool", pool, "--concurrency", "1", "--loglevel", "INFO",
                "--hostname", f"test-{self.queue_name}@%h", "--without-mingle", "--without-gossip",
            ],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout}s; see {self.log_path}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no warm shutdown, no ack
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture
def celery_worker_process(live_broker, transactional_db, tmp_path):
    """Start workers on demand: ``worker = celery_worker_process()``; all stopped after the test."""
    from config.celery import app

    if in_parallel_worker():
        pytest.fail("a test that starts a Celery worker must run in the serial pass: mark it `serial`")
    app.control.purge()
    started = []

    def start(**kwargs):
        worker = WorkerProcess(f"w{len(started)}", tmp_path / f"worker{len(started)}.log").start(**kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def chromium_path():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if IN_CI:
            pytest.fail("CI must install Debian's chromium (apt-get install chromium)")
        pytest.skip("Debian chromium is not installed")
    return path


@pytest.fixture(autouse=True)
def celery_in_process_unless_live(request):
    """Tests run Celery tasks in-process unless they ask for the live broker.

    Under CI a broker is configured, but only the tests that claim to test the
    worker path (``live_broker``/``celery_worker_process``) send through Redis.
    """
    from config.celery import app

    live = "live_broker" in request.fixturenames
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = not live
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def browser(chromium_path):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in the test thread
    from playwright.sync_api import expect, sync_playwright

    # Both cores are busy in the parallel pass: assertions wait as long as actions (default 5 s).
    expect.set_options(timeout=10_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def browser_login(page, live_server, username, password=PASSWORD):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page
