"""What the benchmarks share: their databases, a fixed cutoff, the machine's description, percentiles.

Each benchmark works on PostgreSQL databases of its own, named after the one in
``DATABASE_URL`` (``<name>_r100000``, ``<name>_api``...), filled by
``generate_demo`` and reused with ``--reuse``.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
UNTIL = date(2025, 6, 1)  # a fixed cutoff: the same data whatever the day a benchmark runs
YEARS = 5


def base_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server: the benchmark creates its own databases there.")
    return url


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _server(url: str, sql: str, params=None, *, fetch: bool = False):
    import psycopg2

    conn = psycopg2.connect(with_database(url, "postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() if fetch else None
    finally:
        conn.close()


_STATIC_ROOT: list[str] = []


def production_env(url: str, *, broker: str = "") -> dict[str, str]:
    """The environment of a production process on ``url``: DEBUG off, a secret key, collected static files.

    Benchmarks measure what production runs: with DEBUG on, Django also keeps the
    text of every query it sends (thousands, in a report over 500,000 episodes),
    which costs time and memory that production never spends. ``broker`` empty:
    tasks run in-process. HTTPS is not redirected (no TLS proxy on loopback).
    """
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
    }
    env.pop("CELERY_BROKER_URL", None)
    env.pop("REDIS_URL", None)
    if broker:
        env["CELERY_BROKER_URL"] = broker
    if not _STATIC_ROOT:
        _STATIC_ROOT.append(tempfile.mkdtemp(prefix="commonpath-bench-static-"))
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput"],
            cwd=ROOT,
            env={**env, "STATIC_ROOT": _STATIC_ROOT[0]},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    env["STATIC_ROOT"] = _STATIC_ROOT[0]
    return env


def manage(url: str, *args: str, capture: bool = False) -> str:
    """``manage.py`` against ``url`` with production settings, tasks in-process (nothing here needs a worker)."""
    env = production_env(url)
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        text=True,
    )
    return result.stdout or ""


def generated_database(url: str, suffix: str, episodes: int, *, seed: int, reuse: bool) -> tuple[str, dict | None]:
    """A database ``<name>_<suffix>`` holding ``episodes`` generated episodes.

    Reused as it is when asked and present (after applying any new migration);
    otherwise created afresh and filled. Returns its URL and, when generated,
    the generation's figures (events, seconds, events per second).
    """
    name = f"{database_name(url)}_{suffix}"
    target = with_database(url, name)
    if reuse and _server(url, "SELECT 1 FROM pg_database WHERE datname = %s", [name], fetch=True):
        manage(target, "migrate", "--noinput")
        _vacuum(target, compact=DERIVED_TABLES)
        return target, None
    _server(url, f'DROP DATABASE IF EXISTS "{name}"')
    _server(url, f'CREATE DATABASE "{name}"')
    manage(target, "migrate", "--noinput")
    began = time.perf_counter()
    output = manage(
        target,
        "generate_demo",
        f"--episodes={episodes}",
        f"--seed={seed}",
        f"--until={UNTIL.isoformat()}",
        f"--years={YEARS}",
        capture=True,
    )
    wall = time.perf_counter() - began
    # The high-water mark of the children waited for so far: the generating process is the largest.
    figures = {"wall_seconds": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    for line in output.splitlines():
        if line.startswith("Events: "):
            figures["events"] = int(line.split()[1].replace(",", ""))
        if "events per second:" in line:
            figures["seconds"] = float(line.split("Seconds: ")[1].split(";")[0])
            figures["events_per_second"] = float(line.rsplit(":", 1)[1].replace(",", ""))
    _vacuum(target)
    return target, figures


# Rewritten whole by every full cost run: an earlier run leaves them several times their size
# (dead rows, index pages), which the next run would read and write around.
DERIVED_TABLES = ("costing_episodecost", "costing_episodecostline")


def _vacuum(target: str, *, compact: tuple[str, ...] = ()) -> None:
    """Statistics and visibility as after a fresh load; ``compact`` tables rewritten to their live rows.

    A reused database then starts each run from the same state as a new one.
    """
    import psycopg2

    conn = psycopg2.connect(target)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            if compact:
                cursor.execute(f"VACUUM (FULL) {', '.join(compact)}")
            cursor.execute("VACUUM ANALYZE")
    finally:
        conn.close()


def machine() -> str:
    cpus = os.cpu_count()
    memory = model = ""
    try:
        with open("/proc/meminfo") as f:
            memory = f", {int(f.readline().split()[1]) / 1024 / 1024:.0f} GB RAM"
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.machine()}, {cpus} cores{memory}" + (f", {model}" if model else "")


def server_description(cursor) -> str:
    cursor.execute(
        "SELECT current_setting('server_version'), current_setting('shared_buffers'), current_setting('work_mem')"
    )
    version, buffers, work_mem = cursor.fetchone()
    return f"PostgreSQL {version.split()[0]} (shared_buffers {buffers}, work_mem {work_mem})"


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (0 < share <= 1) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]
