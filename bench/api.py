"""API throughput and latency under load, against /healthz on the same stack as the ceiling.

Starts, on 127.0.0.1 only, what production runs: gunicorn with production
settings (DEBUG=false, a SECRET_KEY, ALLOWED_HOSTS=127.0.0.1, no HTTPS redirect
since there is no TLS proxy here), PostgreSQL, Redis and a Celery worker (each
event and episode queues detection, as in production). A database
``<name>_api`` is filled with ``--episodes`` generated episodes first, and a
service account (the hospital's feed, a clinician role across the trust) gets
a token.

The load generator is threads with ``http.client`` (one connection each), bounded
in time and in requests, at each concurrency (1, 8, 32 by default):

- ``GET /healthz`` (database, broker and worker checked): the ceiling;
- ``POST /api/v1/episodes/`` (start a SEPSIS-ED episode);
- ``POST /api/v1/episodes/{id}/events/`` (one event, with an external id);
- ``POST /api/v1/variances/`` (a documented delay);
- ``GET /api/v1/episodes/{id}/`` (events, variances, expected and actual cost).

Every POST carries an ``Idempotency-Key``, as the integration guide asks.
Reported: requests, errors (any non-2xx or failed connection), throughput and
p50/p95/p99 latency, and each POST's throughput as a share of /healthz's.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/commonpath CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/api.py [--episodes 20000] [--seconds 15] [--concurrency 1 8 32] [--port 8107]

Targets (issue #8): at concurrency 8, event and variance POSTs at least 40% of
/healthz's throughput, p95 under 100 ms, zero errors. The figures are printed last.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support import ROOT, base_url, generated_database, machine, percentile, production_env

VENV_BIN = Path(sys.executable).parent
SEPSIS_STEPS = ["ER-TRIAGE", "SEPSIS-TRIAGE", "LACTATE", "BLOODS", "IV-ANTIBIOTICS", "IV-FLUIDS"]


# --- the stack -------------------------------------------------------------------------------------


def setup_child() -> None:
    """In the bench database: the feed's service account, its token, and episodes to read."""
    import django

    django.setup()
    from accounts.models import Membership, OrgUnit, User
    from accounts.services import api_token_create
    from variances.models import Episode

    user, created = User.objects.get_or_create(
        username="bench-feed", defaults={"kind": User.Kind.SERVICE, "display_name": "Benchmark hospital feed"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    root = OrgUnit.objects.get(parent__isnull=True)
    Membership.objects.get_or_create(user=user, org_unit=root, role=Membership.Role.CLINICIAN)
    _token, raw = api_token_create(user=user, name="bench/api.py")
    readable = list(
        Episode.objects.filter(status=Episode.Status.COMPLETED).order_by("?").values_list("pk", flat=True)[:500]
    )
    print(json.dumps({"token": raw, "episodes": readable}))


class Stack:
    """gunicorn and a Celery worker with production settings, on loopback; stopped on exit."""

    def __init__(self, database_url: str, broker_url: str, port: int, workers: int):
        self.env = production_env(database_url, broker=broker_url)
        self.port = port
        self.workers = workers
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        self.processes.append(
            subprocess.Popen(
                [str(VENV_BIN / "celery"), "-A", "config", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        self.processes.append(
            subprocess.Popen(
                [
                    str(VENV_BIN / "gunicorn"),
                    "config.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--log-level",
                    "warning",
                ],  # fmt: skip
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                status, _ = request(self.port, "GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("gunicorn did not answer /healthz with 200 within 90 s (is the worker and Redis up?)")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


# --- the load --------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, body=None, headers=None, conn=None) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


class Scenario:
    """One endpoint driven by ``concurrency`` threads for ``seconds`` or ``requests``, whichever ends first."""

    def __init__(self, name: str, make, *, port: int, token: str):
        self.name = name
        self.make = make  # (thread index, request number) -> (method, path, body)
        self.port = port
        self.token = token

    def warm(self, concurrency: int, seconds: float) -> None:
        """Unmeasured requests first: every gunicorn worker has its connections and caches."""
        if seconds > 0:
            self.run(concurrency, seconds=seconds, requests=10**9)

    def run(self, concurrency: int, *, seconds: float, requests: int) -> dict:
        latencies: list[float] = []  # of every answered request
        errors: list[str] = []  # non-2xx answers and failed connections
        failed = 0  # of which failed connections
        created: list[int] = []
        lock = threading.Lock()
        budget = iter(range(requests))
        stop_at = time.perf_counter() + seconds

        def worker(index: int) -> None:
            nonlocal failed
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            number = 0
            while time.perf_counter() < stop_at:
                with lock:
                    if next(budget, None) is None:
                        break
                method, path, body = self.make(index, number)
                number += 1
                headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                    headers["Idempotency-Key"] = str(uuid.uuid4())
                began = time.perf_counter()
                try:
                    status, payload = request(self.port, method, path, body, headers, conn)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    with lock:
                        errors.append(type(exc).__name__)
                        failed += 1
                    continue
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    if not 200 <= status < 300:
                        errors.append(f"{status} {payload[:160]!r}")
                    elif method == "POST" and path == "/api/v1/episodes/":
                        created.append(json.loads(payload)["id"])
            conn.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        ok = len(latencies) + failed - len(errors)
        return {
            "scenario": self.name,
            "concurrency": concurrency,
            "requests": len(latencies) + failed,
            "errors": len(errors),
            "error_samples": sorted(set(errors))[:3],
            "throughput": ok / wall if wall else 0.0,
            "p50": percentile(latencies, 0.50) * 1000,
            "p95": percentile(latencies, 0.95) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "created": created,
        }


def scenarios(port: int, token: str, readable: list[int], pool: list[int]) -> dict[str, Scenario]:
    now = datetime.now(UTC).replace(microsecond=0)

    def iso(at: datetime) -> str:
        return at.isoformat().replace("+00:00", "Z")

    def healthz(i, n):
        return "GET", "/healthz", None

    def episode(i, n):
        ref = f"BENCH-{uuid.uuid4().hex[:12].upper()}"
        body = {
            "pathway": "SEPSIS-ED",
            "patient_ref": ref,
            "org_unit": "ED",
            "started_at": iso(now - timedelta(hours=2)),
        }
        return "POST", "/api/v1/episodes/", body

    def event(i, n):
        episode_id = pool[(i * 7919 + n) % len(pool)]
        body = {
            "step": SEPSIS_STEPS[n % len(SEPSIS_STEPS)],
            "occurred_at": iso(now - timedelta(minutes=90) + timedelta(seconds=n)),
            "external_id": f"bench-{uuid.uuid4().hex}",
        }
        return "POST", f"/api/v1/episodes/{episode_id}/events/", body

    def variance(i, n):
        body = {
            "episode": pool[(i * 104729 + n) % len(pool)],
            "step": "IV-ANTIBIOTICS",
            "type": "delay",
            "cause": "system",
            "reason": "limited-time",
            "valence": "negative",
            "rationale": "Department at full stretch; given as soon as a nurse was free.",
            "occurred_at": iso(now - timedelta(minutes=30)),
        }
        return "POST", "/api/v1/variances/", body

    def read(i, n):
        return "GET", f"/api/v1/episodes/{readable[(i * 31 + n) % len(readable)]}/", None

    return {
        name: Scenario(name, make, port=port, token=token)
        for name, make in [
            ("GET /healthz", healthz),
            ("POST episodes", episode),
            ("POST events", event),
            ("POST variances", variance),
            ("GET episode", read),
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20_000, help="generated episodes in the bench database")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse the bench database of an earlier run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=15.0, help="time limit per scenario and concurrency")
    parser.add_argument("--requests", type=int, default=5000, help="request limit per scenario and concurrency")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--port", type=int, default=8107)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1, help="gunicorn workers")
    parser.add_argument("--setup-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_child:
        sys.path.insert(0, str(ROOT))
        setup_child()
        return
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        raise SystemExit("Set CELERY_BROKER_URL to a Redis database (production runs detection on a worker).")
    url = base_url()
    print(f"Preparing the database ({args.episodes:,} generated episodes)", flush=True)
    target, _ = generated_database(url, "api", args.episodes, seed=args.seed, reuse=args.reuse)
    setup = subprocess.run(
        [sys.executable, __file__, "--setup-child"],
        cwd=ROOT,
        env=production_env(target),
        capture_output=True,
        text=True,
        check=True,
    )
    prepared = json.loads(setup.stdout.strip().splitlines()[-1])
    stack = Stack(target, broker, args.port, args.workers)
    print(f"Starting gunicorn ({args.workers} workers) and a Celery worker on 127.0.0.1:{args.port}", flush=True)
    stack.start()
    results = []
    try:
        for concurrency in args.concurrency:
            plan = scenarios(args.port, prepared["token"], prepared["episodes"], [])
            for name in ("GET /healthz", "POST episodes"):
                print(f"  c={concurrency}: {name}", flush=True)
                plan[name].warm(concurrency, args.warmup)
                results.append(plan[name].run(concurrency, seconds=args.seconds, requests=args.requests))
            pool = results[-1]["created"] or prepared["episodes"]
            plan = scenarios(args.port, prepared["token"], prepared["episodes"], pool)
            for name in ("POST events", "POST variances", "GET episode"):
                print(f"  c={concurrency}: {name}", flush=True)
                plan[name].warm(concurrency, args.warmup)
                results.append(plan[name].run(concurrency, seconds=args.seconds, requests=args.requests))
    finally:
        stack.stop()
    report(results, args)


def report(results: list[dict], args) -> None:
    print()
    print(f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}")
    print(
        f"gunicorn {args.workers} sync workers + 1 Celery worker, PostgreSQL, Redis, all on 127.0.0.1; "
        f"{args.seconds:.0f} s or {args.requests:,} requests per row; every POST with an Idempotency-Key"
    )
    print()
    print("| scenario | concurrency | requests | errors | req/s | p50 ms | p95 ms | p99 ms | share of /healthz |")
    print("|---|---|---|---|---|---|---|---|---|")
    ceiling = {r["concurrency"]: r["throughput"] for r in results if r["scenario"] == "GET /healthz"}
    for r in results:
        share = r["throughput"] / ceiling[r["concurrency"]] if ceiling.get(r["concurrency"]) else 0
        print(
            f"| {r['scenario']} | {r['concurrency']} | {r['requests']:,} | {r['errors']} | {r['throughput']:.1f} "
            f"| {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} | {share:.0%} |"
        )
    for r in results:
        for sample in r["error_samples"]:
            print(f"error at c={r['concurrency']} {r['scenario']}: {sample}")


if __name__ == "__main__":
    main()
