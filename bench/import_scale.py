"""Import + detection of a generated CSV of 1,000,000 events; targets: >= 50,000 events/s, flat memory.

Generates sepsis-like cases (about 15 events each: registration, triage,
screening, lactate, repeated CRP and leucocytes, antibiotics and fluids for most,
admission, release, sometimes a return), then imports each file in a fresh
process on a throw-away test database and reports events per second and the
process's peak memory. Two sizes are run so that memory can be compared: if it
is independent of the file size, the larger file needs no more than the smaller.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/commonpath .venv/bin/python bench/import_scale.py [events]

The figures are printed last.
"""

import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_EVENTS_PER_SECOND = 50_000
SMALL = 100_000


def generate(path: Path, events: int, *, seed: int = 7) -> int:
    """Write a CSV of about ``events`` events; returns the exact number written."""
    rng = random.Random(seed)
    written = 0
    start = datetime(2023, 4, 1, tzinfo=UTC)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["case_id", "activity", "timestamp", "resource"])
        case = 0
        while written < events:
            case += 1
            t0 = start + timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60))
            rows = [("ER Registration", 0), ("ER Triage", rng.randint(1, 30)), ("ER Sepsis Triage", rng.randint(2, 40))]
            rows.append(("LacticAcid", rng.randint(-10, 120)))
            for day in range(rng.randint(1, 4)):
                at = rng.randint(10, 90) + day * 1440
                rows += [("CRP", at), ("Leucocytes", at)]
            if rng.random() < 0.8:
                rows.append(("IV Antibiotics", rng.randint(10, 240)))
            if rng.random() < 0.7:
                rows.append(("IV Liquid", rng.randint(5, 180)))
            if rng.random() < 0.85:
                rows.append(("Admission IC" if rng.random() < 0.1 else "Admission NC", rng.randint(60, 400)))
            end = rng.randint(2, 20) * 1440
            if rng.random() < 0.75:
                rows.append((rng.choice("ABCDE").join(("Release ", "")), end))
            if rng.random() < 0.25:
                rows.append(("Return ER", end + rng.randint(1, 60) * 1440))
            rows.sort(key=lambda r: r[1])
            for activity, minutes in rows:
                out.writerow([f"CASE-{case:07d}", activity, (t0 + timedelta(minutes=minutes)).isoformat(), "A"])
            written += len(rows)
    return written


def child(path: str) -> None:
    """Run one import on a fresh test database and print its figures as JSON."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import cpu
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from demo import org, sepsis
    from variances.importers import import_events, load_mapping, loader

    setup_test_environment(debug=False)  # as in production: no query log
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        units = org.load_org()
        sepsis.build_pathway(owner_unit=units["ED"])
        mapping = load_mapping(sepsis.MAPPING_PATH)
        detection = cpu.Timed(loader.evaluate_episodes, loader.evaluate_new_episodes)
        loader.evaluate_episodes, loader.evaluate_new_episodes = detection.wrappers
        pid = cpu.backend_pid(connection)
        python_before, server_before = cpu.own_cpu(), cpu.backend_cpu(pid)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        summary = import_events(path, mapping=mapping, pathway_code="SEPSIS-ED", org_unit=units["ED"], closed=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        python_cpu, server_after = cpu.own_cpu() - python_before, cpu.backend_cpu(pid)
        server_peak = cpu.backend_peak_kb(pid)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    assert summary.committed, summary.lines()
    print(
        json.dumps(
            {
                "vendor": connection.vendor,
                "events": summary.events_read,
                "cases": summary.cases_read,
                "seconds": summary.seconds,
                "detection_seconds": detection.seconds,
                "variances": sum(summary.variances.values()),
                "python_cpu": python_cpu,
                "server_cpu": None if server_after is None else server_after - server_before,
                "rss_before_kb": before,
                "rss_peak_kb": peak,
                "server_peak_kb": server_peak,
            }
        )
    )


def run(path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"the import of {path.name} failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    large = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    results = []
    with tempfile.TemporaryDirectory(prefix="commonpath-bench-") as folder:
        for size in (min(SMALL, large), large):
            path = Path(folder) / f"events-{size}.csv"
            started = time.perf_counter()
            written = generate(path, size)
            print(
                f"generated {written:,} events ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
            )
            results.append(run(path))
    for r in results:
        rate = r["events"] / r["seconds"]
        print(
            f"{r['events']:>9,} events, {r['cases']:,} cases: {r['seconds']:.1f} s "
            f"(detection {r['detection_seconds']:.1f} s, {r['variances']:,} variances) = {rate:,.0f} events/s; "
            f"peak memory {r['rss_peak_kb'] / 1024:.0f} MB ({(r['rss_peak_kb'] - r['rss_before_kb']) / 1024:.0f} MB "
            f"more than before the import)"
        )
        if r["server_cpu"] is not None:
            busy = r["python_cpu"] + r["server_cpu"]
            print(
                f"{'':>9}  CPU time: Python {r['python_cpu']:.1f} s + PostgreSQL backend {r['server_cpu']:.1f} s "
                f"= {busy:.1f} s, i.e. {r['events'] / busy:,.0f} events per CPU-second (about the rate on an idle machine)"
            )
        if r.get("server_peak_kb") is not None:
            print(f"{'':>9}  PostgreSQL backend peak memory {r['server_peak_kb'] / 1024:.0f} MB")
    small, big = results[0], results[-1]
    rate = big["events"] / big["seconds"]
    growth_small = small["rss_peak_kb"] - small["rss_before_kb"]
    growth_big = big["rss_peak_kb"] - big["rss_before_kb"]
    flat = growth_big <= max(1.25 * growth_small, growth_small + 32 * 1024)
    speed = "OK" if rate >= TARGET_EVENTS_PER_SECOND else "TOO SLOW"
    memory = "OK" if flat else "GROWS WITH THE FILE"
    print(f"database: {big['vendor']}")
    print(
        f"import_scale: {big['events']:,} events in {big['seconds']:.1f} s = {rate:,.0f} events per second "
        f"({speed}, target >= {TARGET_EVENTS_PER_SECOND:,}); peak memory {big['rss_peak_kb'] / 1024:.0f} MB for "
        f"{big['events']:,} events vs {small['rss_peak_kb'] / 1024:.0f} MB for {small['events']:,} ({memory})"
    )
    return 0 if speed == memory == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
