"""Report computation time against hand-written SQL (the database's limit), at 10k, 100k and 500k episodes.

For each size N, a PostgreSQL database ``<name>_r<N>`` is filled by
``generate_demo`` (kept and reused with ``--reuse``), then, in a fresh process:

- the variance report (``costing.reports.variance_report``), ``--repeat`` times,
  and the hand-written SQL for the same figures (``bench/sqllimit.py``), which
  must agree with it;
- the cost report: a *full run* (every per-episode cost summary recomputed, as
  after a rate change), then *warm* runs (nothing changed), and the hand-written
  SQL that computes the same headline figures from the raw events, plans and
  rates (no summaries); then 1% of closed episodes change (an extra costed
  event each, as the services record it) and the *incremental* run is timed as
  a fraction of the full run, as a whole report and for its refresh alone (the
  summaries recomputed, without the aggregates every report runs, changed or not);
- peak memory: how far the process's resident high-water mark rose during the
  variance reports and during the full cost run, and Python's own peak
  (tracemalloc) during one variance report and one incremental cost run.

Children run with production settings (DEBUG off: with DEBUG on, Django keeps
the text of every query, which costs memory production never spends).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/commonpath \\
        .venv/bin/python bench/reports.py --episodes 10000 100000 500000 [--reuse]

The database server in DATABASE_URL must let the user create databases. The
figures are printed last. Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta

from support import ROOT, UNTIL, YEARS, base_url, generated_database, machine, production_env


def _child(url: str, n: int, repeat: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--episodes", str(n), "--repeat", str(repeat)],
        cwd=ROOT,
        env=production_env(url),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-8000:])
        raise SystemExit(f"measuring {n:,} episodes failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(results: list[dict], server: str) -> None:
    print()
    print(f"Machine: {machine()}; {server}; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"Date: {date.today().isoformat()}; data: generate_demo, {YEARS} years to {UNTIL.isoformat()}")
    for r in results:
        gen = r.get("generate")
        made = (
            f"generated in {gen['seconds']:.0f} s, {gen['events_per_second']:,.0f} events/s, peak RSS {gen['peak_rss_mb']:.0f} MB"
            if gen
            else "reused"
        )
        print(f"{r['episodes']:,} episodes, {r['events']:,} events, {r['variances']:,} variances ({made})")
    print()
    print("Variance report (seconds, median of the warm runs) against the hand-written SQL for its figures:")
    print()
    print(
        "| episodes | report s | SQL s | report/SQL | after 1% change s | RSS growth MB | Python peak MB | figures agree |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['episodes']:,} | {r['variance_report']:.2f} | {r['variance_sql']:.2f} | {r['variance_ratio']:.2f} "
            f"| {r['variance_after_change']:.2f} | {r['variance_rss_mb']:.0f} | {r['py_peak_variance_mb']:.1f} "
            f"| {'yes' if r['agree'] else 'NO'} |"
        )
    print()
    print("Cost report (seconds): full run (every summary recomputed), warm, after 1% of episodes changed,")
    print("against hand-written SQL computing the headline figures from raw events, plans and rates:")
    print()
    print(
        "| episodes | full run s | warm s | SQL s | warm/SQL | full/SQL | 1% change s | of full run "
        "| refresh: full s | refresh: 1% s | of full refresh | RSS growth MB (full run) | Python peak MB (1% run) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['episodes']:,} | {r['cost_full']:.1f} | {r['cost_warm']:.2f} | {r['cost_sql']:.2f} "
            f"| {r['cost_warm_ratio']:.2f} | {r['cost_full_ratio']:.1f} | {r['cost_incremental']:.2f} "
            f"| {r['incremental_share']:.1%} | {r['refresh_full']:.2f} | {r['refresh_incremental']:.3f} "
            f"| {r['refresh_share']:.1%} | {r['cost_full_rss_mb']:.0f} | {r['py_peak_cost_mb']:.1f} |"
        )
    if len(results) > 1:
        print()
        first = results[0]
        for r in results[1:]:
            scale = r["episodes"] / first["episodes"]
            print(
                f"{first['episodes']:,} -> {r['episodes']:,} episodes (x{scale:.0f}): variance report "
                f"x{r['variance_report'] / first['variance_report']:.1f} (its SQL "
                f"x{r['variance_sql'] / first['variance_sql']:.1f}); cost full run x{r['cost_full'] / first['cost_full']:.1f}, "
                f"warm x{r['cost_warm'] / first['cost_warm']:.1f}, 1% change x{r['cost_incremental'] / first['cost_incremental']:.1f} "
                f"(SQL x{r['cost_sql'] / first['cost_sql']:.1f})"
            )
    for r in results:
        for line in r.get("disagreements", [])[:10]:
            print(f"DISAGREES at {r['episodes']:,}: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[10_000, 100_000, 500_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each warm measurement (median)")
    parser.add_argument("--reuse", action="store_true", help="reuse databases generated by an earlier run")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(measure_child(args), default=str))
        return
    url = base_url()
    results = []
    server = ""
    for n in args.episodes:
        print(f"{n:,} episodes: preparing the database", flush=True)
        target, generated = generated_database(url, f"r{n}", n, seed=args.seed, reuse=args.reuse)
        print(f"{n:,} episodes: measuring", flush=True)
        figures = _child(target, n, args.repeat)
        figures["generate"] = generated
        server = figures.pop("server", server)
        results.append(figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"server": server, "results": results}, f, indent=1, default=str)
    print_table(results, server)


# --- child: measure --------------------------------------------------------------------------------


def _setup_django():
    import django

    django.setup()


def _timed(fn, *args) -> tuple[float, object]:
    began = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - began, value


def _python_peak(fn, *args) -> float:
    import tracemalloc

    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1] / 1024 / 1024
    finally:
        tracemalloc.stop()


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_child(args) -> dict:
    _setup_django()
    import sqllimit
    from django.db import connection
    from django.utils import timezone
    from support import server_description

    from accounts.models import OrgUnit
    from costing import reports as cost_reports
    from costing.models import CostRate, EpisodeCost
    from costing.reports import ReportParameters, Scope, cost_report, variance_report
    from pathways.models import Pathway
    from variances.models import Episode, StepEvent, Variance

    repeat = args.repeat
    root = OrgUnit.objects.get(parent__isnull=True)
    params = ReportParameters(
        org_unit=root.code, date_from=UNTIL - timedelta(days=round(YEARS * 365.25) + 1), date_to=UNTIL
    )
    scope = Scope(params)
    pathway_codes = dict(Pathway.objects.values_list("pk", "code"))
    with connection.cursor() as cursor:
        server = server_description(cursor)
    out: dict = {
        "episodes": Episode.objects.count(),
        "events": StepEvent.objects.count(),
        "variances": Variance.objects.count(),
        "server": server,
    }
    disagreements: list[str] = []
    # Memory: the process's resident high-water mark above this baseline, read after the
    # variance reports and after the full cost run (nothing before them keeps per-episode data).
    baseline = _rss_mb()

    # Variance report against its SQL (alternating, so that neither always finds the cache warmer).
    report_times, sql_times = [], []
    for _ in range(repeat):
        seconds, result = _timed(variance_report, params)
        report_times.append(seconds)
        seconds, figures = _timed(sqllimit.variance_figures, scope)
        sql_times.append(seconds)
    disagreements += sqllimit.differences(
        sqllimit.report_variance_headline(result),
        sqllimit.variance_headline(figures, pathway_codes=pathway_codes),
    )
    out["variance_report"] = statistics.median(report_times)
    out["variance_sql"] = statistics.median(sql_times)
    out["variance_ratio"] = out["variance_report"] / out["variance_sql"]
    out["variance_rss_mb"] = _rss_mb() - baseline

    # The refresh inside each cost report is timed on its own as well: the aggregates that
    # follow it take the same time whether 1% or all of the summaries were recomputed.
    refreshes: list[float] = []
    refresh = cost_reports.episode_costs_refresh

    def timed_refresh(**kwargs):
        seconds, done = _timed(lambda: refresh(**kwargs))
        refreshes.append(seconds)
        return done

    cost_reports.episode_costs_refresh = timed_refresh

    # Cost report: a full run (a rate change makes every summary stale), warm runs, and its SQL from raw data.
    CostRate.objects.filter(pk=CostRate.objects.order_by("pk").values("pk")[:1]).update(updated_at=timezone.now())
    out["cost_full"], result = _timed(cost_report, params)
    out["refresh_full"] = refreshes[-1]
    out["cost_full_rss_mb"] = _rss_mb() - baseline
    out["summaries"] = EpisodeCost.objects.count()
    warm, sql = [], []
    for _ in range(repeat):
        seconds, result = _timed(cost_report, params)
        warm.append(seconds)
        seconds, rows = _timed(sqllimit.cost_figures, scope)
        sql.append(seconds)
    disagreements += sqllimit.differences(
        sqllimit.report_cost_headline(result), sqllimit.cost_headline(rows, pathway_codes=pathway_codes)
    )
    out["cost_warm"] = statistics.median(warm)
    out["cost_sql"] = statistics.median(sql)
    out["cost_warm_ratio"] = out["cost_warm"] / out["cost_sql"]
    out["cost_full_ratio"] = out["cost_full"] / out["cost_sql"]

    # 1% of closed episodes change: each gets one more costed event, as event_record stores it.
    changed = change_one_percent()
    out["changed_episodes"] = changed
    out["cost_incremental"], result = _timed(cost_report, params)
    out["incremental_share"] = out["cost_incremental"] / out["cost_full"]
    out["refresh_incremental"] = refreshes[-1]
    out["refresh_share"] = out["refresh_incremental"] / out["refresh_full"]
    seconds, rows = _timed(sqllimit.cost_figures, scope)
    disagreements += sqllimit.differences(
        sqllimit.report_cost_headline(result), sqllimit.cost_headline(rows, pathway_codes=pathway_codes)
    )
    out["variance_after_change"], _ = _timed(variance_report, params)

    # Python's own peak allocation (tracemalloc) during one variance report and one incremental cost run.
    out["py_peak_variance_mb"] = _python_peak(variance_report, params)
    change_one_percent(offset=1)
    out["py_peak_cost_mb"] = _python_peak(cost_report, params)
    out["disagreements"] = disagreements
    out["agree"] = not disagreements
    return out


def change_one_percent(offset: int = 0) -> int:
    """One closed episode in a hundred gets an extra event with actual quantities, and is touched."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from pathways.models import PlannedResource
    from variances.models import Episode, EventQuantity, StepEvent

    ids = list(
        Episode.objects.exclude(status=Episode.Status.ACTIVE).order_by("pk").values_list("pk", "version_id", "ended_at")
    )[offset::100]
    planned: dict[int, tuple[int, int, object]] = {}
    for step_id, version_id, resource_id, quantity in (
        PlannedResource.objects.filter(step__per_day=False)
        .order_by("step__version_id", "step__order", "id")
        .values_list("step_id", "step__version_id", "resource_id", "quantity")
    ):
        planned.setdefault(version_id, (step_id, resource_id, quantity))
    now = timezone.now()
    with transaction.atomic():
        events, quantities = [], []
        for episode_id, version_id, ended_at in ids:
            if version_id not in planned:
                continue
            step_id, resource_id, quantity = planned[version_id]
            events.append(
                StepEvent(episode_id=episode_id, step_id=step_id, occurred_at=ended_at, source="api", recorded_at=now)
            )
            quantities.append((resource_id, quantity))
        StepEvent.objects.bulk_create(events, batch_size=5000)
        EventQuantity.objects.bulk_create(
            [
                EventQuantity(event=e, resource_id=r, quantity=q * 2)
                for e, (r, q) in zip(events, quantities, strict=True)
            ],
            batch_size=5000,
        )
        Episode.objects.filter(pk__in=[e.episode_id for e in events]).update(
            updated_at=now, row_version=F("row_version") + 1
        )
    return len(events)


if __name__ == "__main__":
    main()
