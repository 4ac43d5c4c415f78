"""Server time and query count of the pages people open most, at 500,000 episodes (or any N).

Reads the database ``<name>_r<N>`` that ``bench/reports.py`` generates (it is
generated here if missing), computes the default dashboard reports for the
demo units (rolling twelve months to the data's cutoff, as the nightly run
does), then requests each page ``--repeat`` times in-process through Django's
full middleware stack (sessions, authentication, CSP, audit) and reports the
server time p50/p95/max and the number of SQL queries of one request:

- the manager dashboard (``manager``, Surgery division, cost lens);
- the clinician dashboard (``clinician``, Trauma & Orthopaedics, clinical lens);
- the variance inbox (``clinician``: unexplained variances on their patients);
- the episode page (``clinician``: the largest hip fracture episode in the unit);
- and, beside them, the lead's review queue and the episode list.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/commonpath \\
        .venv/bin/python bench/pages.py --episodes 500000 [--repeat 40]

The figures are printed last. Target: p95 under 300 ms at 500,000 episodes,
with the same number of queries whatever N (``tests/test_query_counts.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta

from support import ROOT, UNTIL, base_url, generated_database, machine, percentile, production_env

TARGET_P95_MS = 300


class QueryCounter:
    """A database execute wrapper that counts the statements sent."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def measure_child(args) -> dict:
    import django

    django.setup()
    import time_machine
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.utils import timezone
    from support import server_description

    from accounts.models import User
    from costing.models import ReportRun
    from costing.reports import ReportParameters
    from costing.services import report_run_request
    from costing.tasks import run_report
    from variances.models import Episode

    # The pages as they look the morning after the data's cutoff.
    now = datetime.combine(UNTIL, datetime.min.time(), tzinfo=timezone.get_default_timezone()) + timedelta(hours=9)
    traveller = time_machine.travel(now, tick=True)
    traveller.start()

    prepared = {}
    for unit in ("SURG", "ORTHO"):
        for kind in (ReportRun.Kind.COST, ReportRun.Kind.VARIANCE):
            params = ReportParameters(org_unit=unit, date_from=UNTIL - timedelta(days=364), date_to=UNTIL)
            began = time.perf_counter()
            run, _joined = report_run_request(kind=kind, parameters=params, actor=None)
            run_report.apply(args=[run.pk])
            run.refresh_from_db()
            assert run.status == ReportRun.Status.SUCCEEDED, run.error
            prepared[f"{kind} report for {unit}"] = time.perf_counter() - began

    clinician = User.objects.get(username="clinician")
    episode = (
        Episode.objects.filter(
            version__pathway__code="HIP-FRACTURE", org_unit__path__startswith="RCH/SURG/ORTHO/", status="completed"
        )
        .annotate(n=Count("events"))
        .order_by("-n", "pk")
        .values_list("pk", "n")
        .first()
    )
    pages = [
        ("Manager dashboard", "manager", "/costing/dashboard/"),
        ("Clinician dashboard", "clinician", "/costing/dashboard/"),
        ("Variance inbox", "clinician", "/variances/"),
        (f"Episode page ({episode[1]} events)", "clinician", f"/variances/episodes/{episode[0]}/"),
        ("Review queue", "lead", "/variances/review/"),
        ("Episode list", "clinician", "/variances/episodes/?status=completed"),
    ]
    rows = []
    for label, username, url in pages:
        client = Client(secure=True)  # as behind the TLS proxy: secure cookies are sent
        client.force_login(User.objects.get(username=username), backend="django.contrib.auth.backends.ModelBackend")
        client.get(url)  # warm: templates compiled, connection open
        # Counted at the cursor: the request may close and reopen the connection (CONN_MAX_AGE, health checks).
        queries = QueryCounter()
        with connection.execute_wrapper(queries):
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200
        rows.append(
            {
                "page": label,
                "as": username,
                "queries": queries.count,
                "bytes": len(response.content),
                "p50": percentile(times, 0.5),
                "p95": percentile(times, 0.95),
                "max": max(times),
            }
        )
    traveller.stop()
    with connection.cursor() as cursor:
        server = server_description(cursor)
    return {
        "episodes": Episode.objects.count(),
        "clinician_episodes": Episode.objects.filter(responsible_clinician=clinician).count(),
        "prepared": prepared,
        "pages": rows,
        "server": server,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[500_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(measure_child(args)))
        return
    url = base_url()
    results = []
    for n in args.episodes:
        print(f"{n:,} episodes: preparing the database (reused if bench/reports.py made it)", flush=True)
        target, _ = generated_database(url, f"r{n}", n, seed=args.seed, reuse=True)
        env = production_env(target)
        print(f"{n:,} episodes: computing the dashboards' reports, then timing the pages", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--repeat", str(args.repeat)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
            raise SystemExit(f"measuring pages at {n:,} episodes failed")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    print()
    print(f"Machine: {machine()}; {results[-1]['server']}; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"Server time in-process (Django test client, full middleware), {args.repeat} requests per page")
    for result in results:
        print()
        print(
            f"{result['episodes']:,} episodes ({result['clinician_episodes']:,} of them the demo clinician's); "
            + "; ".join(f"{k} {v:.1f} s" for k, v in result["prepared"].items())
        )
        print()
        print("| page | as | queries | KB | p50 ms | p95 ms | max ms | p95 < 300 ms |")
        print("|---|---|---|---|---|---|---|---|")
        for row in result["pages"]:
            print(
                f"| {row['page']} | {row['as']} | {row['queries']} | {row['bytes'] / 1024:.0f} | {row['p50']:.0f} "
                f"| {row['p95']:.0f} | {row['max']:.0f} | {'yes' if row['p95'] < TARGET_P95_MS else 'NO'} |"
            )


if __name__ == "__main__":
    main()
