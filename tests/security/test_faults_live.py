"""Issue #9 check 6: broker and database loss under load, against a real server.

gunicorn (production settings, persistent database connections) and a Celery
worker run on the test database and the live Redis broker. Client threads submit
variances and events and request reports, each with an Idempotency-Key, retrying
with the same key on 503 or a failed connection, as the integration guide asks.
Meanwhile Redis is shut down (losing every message it held) and started again,
then PostgreSQL is restarted. Afterwards:

- every submission the server acknowledged (2xx) is in the database exactly once;
- every answer that was not 2xx was a 503 (or a 409 "still in flight" for a retry)
  in problem+json with a request id and no trace; otherwise the connection failed;
- every report run requested completes (its row is the outbox: the sweeper sends
  again what the outage lost, and the worker reconnects to Redis by itself);
- the same server process answers normally again, without a restart.

Redis and PostgreSQL are always up again when the test ends, whatever happened.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from accounts.models import IdempotencyKey
from accounts.services import api_token_create
from costing import tasks as costing_tasks
from costing.models import ReportRun
from tests.api.factories import build_tkr, reason, start_episode
from tests.conftest import ROOT, database_url_for_subprocess, require
from variances.models import StepEvent, Variance

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 6
OPS_PER_CLIENT = 20  # 120 submissions: 78 variances, 24 events (each queues detection), 18 report requests
PAUSE = 0.15  # seconds between a client's submissions, so that the load spans the faults
OP_DEADLINE = 60  # a client gives up on one submission after this long (never reached when green)
RETRY_ON = (503, 409)  # unavailable, or the first attempt with this key still in flight
TRACE_MARKERS = ("Traceback", 'File "', "OperationalError", "InterfaceError", "psycopg", "kombu")


# --- services ------------------------------------------------------------------------------


def wait_for(check, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Redis:
    def __init__(self, url: str):
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 6379

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        command = ["redis-cli", "-h", self.host, "-p", str(self.port), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)

    def up(self) -> bool:
        return self.cli("ping").stdout.strip() == "PONG"

    def stop(self) -> None:
        self.cli("shutdown", "nosave")
        wait_for(lambda: not self.up(), 10, "Redis to stop")

    def start(self) -> None:
        if self.up():
            return
        os.makedirs("/var/lib/redis", exist_ok=True)
        os.makedirs("/var/log/redis", exist_ok=True)
        subprocess.run(
            [
                "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
            ],
            check=True, timeout=10, capture_output=True,
        )  # fmt: skip
        wait_for(self.up, 30, "Redis to start")


class Postgres:
    def __init__(self):
        s = connection.settings_dict
        self.host, self.port = s.get("HOST") or "127.0.0.1", str(s.get("PORT") or 5432)
        self.version = sorted(os.listdir("/etc/postgresql"))[0]

    def up(self) -> bool:
        command = ["pg_isready", "-h", self.host, "-p", self.port, "-q"]
        return subprocess.run(command, timeout=10, check=False).returncode == 0

    def ctl(self, action: str) -> None:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", action]
        subprocess.run(command, check=True, timeout=60, capture_output=True)

    def restart(self) -> None:
        self.ctl("restart")
        wait_for(self.up, 60, "PostgreSQL to accept connections", interval=0.2)

    def ensure_up(self) -> None:
        if not self.up():
            self.ctl("start")
            wait_for(self.up, 60, "PostgreSQL to start", interval=0.2)


def local_services():
    """Redis and PostgreSQL on this machine, which the test may stop and start."""
    broker = settings.CELERY_BROKER_URL
    require(broker.startswith("redis://"), "the fault test restarts a Redis broker (CELERY_BROKER_URL=redis://...)")
    require(connection.vendor == "postgresql", "the fault test restarts PostgreSQL (set DATABASE_URL)")
    redis = Redis(broker)
    require(redis.host in ("127.0.0.1", "localhost"), "the fault test restarts only a Redis on this machine")
    require(bool(shutil.which("redis-server")) and bool(shutil.which("pg_ctlcluster")), "redis-server, pg_ctlcluster")
    require(os.path.isdir("/etc/postgresql"), "a Debian PostgreSQL cluster to restart")
    return redis, Postgres()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with production settings on the test database; persistent connections, as deployed."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.log_path = tmp_path / "gunicorn.log"
        static = tmp_path / "static"
        static.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url_for_subprocess(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "DEBUG": "false",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "STATIC_ROOT": str(static),
            "CONN_MAX_AGE": "60",
            "API_REPORT_RATE": "1000/min",
        }
        self.proc = None

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
                "--workers", "3", "--timeout", "60", "--log-level", "warning",
            ],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(lambda: self.alive() and self.get("/healthz")[0] in (200, 503), 60, "gunicorn to answer")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        try:
            return request(self.port, "GET", path, token=token)[:2]
        except OSError:
            return 0, b""

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()


def request(port: int, method: str, path: str, *, token=None, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


# --- the load --------------------------------------------------------------------------------


@dataclass
class Op:
    kind: str  # variance, event or report
    path: str
    body: dict
    key: str = field(default_factory=lambda: f"fault-{uuid.uuid4()}")
    answers: list = field(default_factory=list)  # (status, content type, body text) of every HTTP answer
    connection_errors: int = 0
    acknowledged: dict | None = None
    acknowledged_at: float = 0.0


def plan(episodes: list[int], started_at) -> list[list[Op]]:
    """Per client, its submissions in order: mostly variances, some events and report requests."""
    today = timezone.localdate()
    clients = []
    for c in range(CLIENTS):
        ops = []
        for n in range(OPS_PER_CLIENT):
            i = c * OPS_PER_CLIENT + n
            episode = episodes[i % len(episodes)]
            if n % 6 == 3:
                parameters = {
                    "org_unit": "ORTHO",
                    "date_from": str(today - timedelta(days=30 + i)),
                    "date_to": str(today),
                }
                ops.append(Op("report", "/api/v1/reports/", {"kind": "variance", "parameters": parameters}))
            elif n % 6 == 0:
                body = {
                    "step": "PREOP",
                    "occurred_at": (started_at + timedelta(minutes=i)).isoformat(),
                    "external_id": f"fault-event-{i}",
                }
                ops.append(Op("event", f"/api/v1/episodes/{episode}/events/", body))
            else:
                body = {
                    "episode": episode,
                    "step": "SURGERY",
                    "type": "delay",
                    "cause": "system",
                    "reason": "service-not-available",
                    "valence": "negative",
                    "rationale": f"fault-load submission {i}",
                    "occurred_at": (started_at + timedelta(hours=2, minutes=i)).isoformat(),
                }
                ops.append(Op("variance", "/api/v1/variances/", body))
        clients.append(ops)
    return clients


def submit(port: int, token: str, op: Op, stop: threading.Event) -> None:
    """POST until acknowledged, retrying with the same Idempotency-Key on 503, 409 in flight or no answer."""
    deadline = time.monotonic() + OP_DEADLINE
    while time.monotonic() < deadline and not stop.is_set():
        try:
            status, raw, headers = request(
                port, "POST", op.path, token=token, body=op.body, headers={"Idempotency-Key": op.key}
            )
        except OSError:  # refused, reset or timed out while the server's database restarts
            op.connection_errors += 1
            time.sleep(0.2)
            continue
        text = raw.decode(errors="replace")
        op.answers.append((status, headers.get("Content-Type", ""), text, headers.get("Retry-After")))
        if 200 <= status < 300:
            op.acknowledged, op.acknowledged_at = json.loads(text), time.monotonic()
            return
        if status in RETRY_ON:
            time.sleep(0.3)  # shorter than the Retry-After asked for: the test has no time to spare
            continue
        return  # anything else is a failure the assertions report


# --- the test --------------------------------------------------------------------------------


def test_broker_and_database_loss_under_load(celery_worker_process, org, sam, tmp_path, monkeypatch, settings):  # noqa: PLR0915 - one scenario, told in order
    redis, postgres = local_services()
    version = build_tkr(org["ORTHO"])
    reason()
    episodes = [start_episode(version, org["ORTHO"], sam, ref=f"PT-FLT{n:03d}", hours_ago=30).pk for n in range(12)]
    started_at = timezone.now() - timedelta(hours=30)
    _, token = api_token_create(user=sam, name="fault test")
    # The outage loses report messages; the sweeper and the worker see lapsed leases in seconds, not minutes.
    monkeypatch.setattr(costing_tasks, "RESEND_AFTER", timedelta(seconds=2))
    monkeypatch.setenv("REPORT_RUN_LEASE_SECONDS", "5")
    settings.REPORT_RUN_LEASE_SECONDS = 5

    server = Server(tmp_path)
    clients = plan(episodes, started_at)
    ops = [op for client in clients for op in client]
    stop = threading.Event()
    threads: list[threading.Thread] = []
    timings: dict[str, float] = {}
    began = time.monotonic()
    try:
        celery_worker_process()
        server.start()
        wait_for(lambda: server.get("/healthz")[0] == 200, 30, "/healthz to answer 200 (database, broker, worker)")
        server_pid = server.proc.pid

        def client(client_ops: list[Op]) -> None:
            for op in client_ops:
                submit(server.port, token, op, stop)
                time.sleep(PAUSE)

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in clients]
        for thread in threads:
            thread.start()

        def acknowledged(kind: str | None = None, since: float = 0.0) -> int:
            last = [(op.kind, op.answers[-1][:3]) for op in ops if op.answers]
            given_up = [(kind, answer) for kind, answer in last if answer[0] >= 300 and answer[0] not in RETRY_ON]
            assert not given_up, given_up[:3]  # a 500 (say) ends that client's submission: fail at once
            return sum(
                op.acknowledged is not None and op.acknowledged_at >= since and kind in (None, op.kind) for op in ops
            )

        wait_for(lambda: acknowledged() >= 15, 30, "the first submissions")
        redis.stop()  # every message Redis held is gone, the worker's connection too
        down = time.monotonic()
        wait_for(
            lambda: (
                acknowledged("report", down) >= 3
                and acknowledged("event", down) >= 3
                and acknowledged(since=down) >= 20
            ),
            30,
            "reports, events and variances acknowledged while Redis is down",
        )
        sent_during_outage = {op.acknowledged["id"] for op in ops if op.kind == "report" and op.acknowledged_at >= down}
        timings["redis down (s)"] = time.monotonic() - down
        redis.start()
        acked_before = acknowledged()
        wait_for(lambda: acknowledged() >= acked_before + 10, 30, "submissions after Redis is back")
        t = time.monotonic()
        postgres.restart()  # every connection dies: the server's, the worker's and ours
        timings["postgres restart (s)"] = time.monotonic() - t
        connections.close_all()

        for thread in threads:
            thread.join(timeout=max(1, OP_DEADLINE + 30 - (time.monotonic() - began)))
        assert not any(thread.is_alive() for thread in threads), "clients still retrying"
        timings["load (s)"] = time.monotonic() - began

        # --- every answer was clean -------------------------------------------------------
        statuses = sorted({answer[0] for op in ops for answer in op.answers})
        for op in ops:
            for status, content_type, text, retry_after in op.answers:
                assert not any(marker in text for marker in TRACE_MARKERS), (op.kind, status, text[:500])
                if status >= 300:
                    assert status in RETRY_ON, (op.kind, status, text[:500])
                    assert content_type == "application/problem+json", (op.kind, status, content_type, text[:300])
                    problem = json.loads(text)
                    assert problem["status"] == status and problem["request_id"], problem
                    assert retry_after, (op.kind, status)
        unacknowledged = [(op.kind, op.answers[-1:] or op.connection_errors) for op in ops if op.acknowledged is None]
        assert not unacknowledged, unacknowledged

        # --- every acknowledged submission is stored exactly once ---------------------------
        variances = [op for op in ops if op.kind == "variance"]
        stored = list(Variance.objects.filter(rationale__startswith="fault-load ").values_list("pk", "rationale"))
        assert len(stored) == len(variances) == len({pk for pk, _ in stored})
        assert sorted(r for _, r in stored) == sorted(op.body["rationale"] for op in variances)
        assert {pk for pk, _ in stored} == {op.acknowledged["id"] for op in variances}
        events = [op for op in ops if op.kind == "event"]
        stored_events = list(
            StepEvent.objects.filter(external_id__startswith="fault-event-").values_list("external_id", flat=True)
        )
        assert sorted(stored_events) == sorted(op.body["external_id"] for op in events)
        keys = IdempotencyKey.objects.filter(key__startswith="fault-")
        assert keys.count() == len(ops)
        assert set(keys.values_list("status", flat=True)) == {IdempotencyKey.Status.COMPLETED}

        # --- every report requested completes --------------------------------------------------
        run_ids = {op.acknowledged["id"] for op in ops if op.kind == "report"}
        assert run_ids

        swept = []

        def all_succeeded() -> bool:
            swept.append(costing_tasks.sweep_report_runs())  # beat's job, every minute in production
            runs = ReportRun.objects.filter(pk__in=run_ids)
            return set(runs.values_list("status", flat=True)) == {ReportRun.Status.SUCCEEDED}

        t = time.monotonic()
        wait_for(all_succeeded, 60, "every report run to succeed", interval=1)
        timings["reports done after (s)"] = time.monotonic() - t
        # Those requested while Redis was down were never sent at request time: only the sweeper sent them.
        assert sent_during_outage <= run_ids and sum(swept) >= len(sent_during_outage), (swept, sent_during_outage)

        # --- the same server answers normally, without a restart ------------------------------
        assert server.alive() and server.proc.pid == server_pid
        wait_for(lambda: server.get("/healthz")[0] == 200, 30, "/healthz to answer 200 again")
        after = Op("variance", "/api/v1/variances/", {**variances[0].body, "rationale": "after the faults"})
        status, raw, _ = request(server.port, "POST", after.path, token=token, body=after.body)
        assert status == 201, raw[:500]
        assert server.get("/api/v1/variances/?limit=1", token=token)[0] == 200
        timings["total (s)"] = time.monotonic() - began
        print(  # noqa: T201 - the figures are part of the evidence (pytest -s)
            "\nfault test:",
            {k: round(v, 1) for k, v in timings.items()},
            "answers:",
            statuses,
            "retried:",
            sum(len(op.answers) + op.connection_errors > 1 for op in ops),
            "connection errors:",
            sum(op.connection_errors for op in ops),
            "reports requested while Redis was down:",
            len(sent_during_outage),
            "re-sent by the sweeper:",
            sum(swept),
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        redis.start()
        postgres.ensure_up()
        connections.close_all()
        server.stop()
