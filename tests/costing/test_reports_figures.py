"""Report figures against an independent computation in plain Python over generated data.

The reports aggregate in the database; here the same figures are computed by
walking the generated rows one by one, with the costing rules re-implemented
from DOMAIN.md (not by calling the engine), and both must agree.
"""

import math
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from costing.models import EpisodeCost, EpisodeCostLine
from costing.reports import ReportParameters, cost_report, variance_report
from tests.costing.factories import generate_dataset, two_pathways
from variances.models import Episode, Variance

pytestmark = pytest.mark.django_db

SCOPES = [
    {"org_unit": "SURG", "pathways": [], "date_from": "2025-06-01", "date_to": "2025-12-31"},
    {"org_unit": "ORTHO-W7", "pathways": ["HIP"], "date_from": "2025-04-01", "date_to": "2026-03-31"},
]


@pytest.fixture
def dataset(org, alice, bob, dora):
    hip, gall = two_pathways(org["ORTHO"])
    return generate_dataset(
        pathways=[hip, gall],
        units=[org["ORTHO"], org["ORTHO-W7"], org["ED"]],
        clinicians=[alice, bob, dora],
        n=400,
        seed=11,
    )


def in_scope(params: dict) -> list[Episode]:
    units = {"SURG": {"SURG", "ORTHO", "ORTHO-W7"}, "ORTHO-W7": {"ORTHO-W7"}}[params["org_unit"]]
    first, last = date.fromisoformat(params["date_from"]), date.fromisoformat(params["date_to"])
    out = []
    for e in Episode.objects.select_related("org_unit", "version__pathway").order_by("pk"):
        day = timezone.localtime(e.started_at).date()
        if e.org_unit.code not in units or not (first <= day <= last):
            continue
        if params["pathways"] and e.version.pathway.code not in params["pathways"]:
            continue
        out.append(e)
    return out


def cents(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def rows_by_key(table):
    return {row["key"]: row for row in table["rows"]}


# --- variance report ---------------------------------------------------------------------


@pytest.mark.parametrize("params", SCOPES)
def test_it_counts_variances_as_plain_python_does(dataset, params, settings):
    settings.REVISION_SIGNAL_SHARE = 0.05
    episodes = in_scope(params)
    ids = {e.pk for e in episodes}
    variances = [v for v in Variance.objects.select_related("reason", "step", "detection") if v.episode_id in ids]
    variances = [v for v in variances if v.status != Variance.Status.WITHDRAWN]
    by_episode = defaultdict(list)
    for v in variances:
        by_episode[v.episode_id].append(v)

    result = variance_report(ReportParameters.from_dict(params))
    summary, tables = result["summary"], result["tables"]

    assert summary["episodes"] == len(episodes) > 50
    assert summary["with_variance"] == len(by_episode)
    assert summary["variances"] == len(variances)
    assert summary["unexplained"] == sum(v.status == "unexplained" for v in variances)
    assert summary["positive"] == sum(v.valence == "positive" for v in variances)
    assert summary["active"] == sum(e.status == "active" for e in episodes)

    def bucket(e):
        vs = by_episode.get(e.pk, [])
        if not vs:
            return "on_pathway"
        if any(v.status == "unexplained" for v in vs):
            return "undocumented"
        if any(v.status == "reviewed" and v.justified is False for v in vs):
            return "unjustified"
        if any(v.status == "documented" for v in vs):
            return "awaiting_review"
        return "justified"

    adherence = Counter(bucket(e) for e in episodes)
    assert {k: r["episodes"] for k, r in rows_by_key(tables["adherence"]).items()} == {
        k: adherence.get(k, 0) for k in ("on_pathway", "justified", "awaiting_review", "unjustified", "undocumented")
    }

    for table, attr in (("by_type", "variance_type"), ("by_cause", "cause")):
        expected = defaultdict(lambda: [0, set()])
        for v in variances:
            expected[getattr(v, attr)][0] += 1
            expected[getattr(v, attr)][1].add(v.episode_id)
        got = rows_by_key(tables[table])
        assert {k: (r["variances"], r["episodes"]) for k, r in got.items()} == {
            k: (n, len(eps)) for k, (n, eps) in expected.items()
        }
        counts = [r["variances"] for r in tables[table]["rows"]]
        assert counts == sorted(counts, reverse=True)  # Pareto order
        assert tables[table]["rows"][-1]["cumulative"] == "1.0000"

    reasons = Counter(v.reason.code if v.reason_id else "" for v in variances)
    assert {k: r["variances"] for k, r in rows_by_key(tables["by_reason"]).items()} == dict(reasons)

    steps = defaultdict(lambda: [0, set()])
    for v in variances:
        if v.step_id:
            key = f"{v.step.version.pathway.code}/{v.step.code}"
            steps[key][0] += 1
            steps[key][1].add(v.episode_id)
    assert {k: (r["variances"], r["episodes"]) for k, r in rows_by_key(tables["by_step"]).items()} == {
        k: (n, len(eps)) for k, (n, eps) in steps.items()
    }

    months = defaultdict(lambda: [0, 0, 0])
    for e in episodes:
        month = timezone.localtime(e.started_at).strftime("%Y-%m")
        months[month][0] += 1
        months[month][1] += bool(by_episode.get(e.pk))
        months[month][2] += len(by_episode.get(e.pk, []))
    trend = rows_by_key(tables["trend"])
    assert {k: [r["episodes"], r["with_variance"], r["variances"]] for k, r in trend.items()} == dict(months)

    detected = [v for v in variances if v.detection_id]
    waits = Counter()
    for v in detected:
        if v.status == "unexplained":
            waits["waiting"] += 1
        elif v.documented_at - v.detection.detected_at <= timedelta(days=1):
            waits["day"] += 1
        elif v.documented_at - v.detection.detected_at <= timedelta(days=7):
            waits["week"] += 1
        else:
            waits["later"] += 1
    assert {k: r["variances"] for k, r in rows_by_key(tables["documentation_time"]).items()} == {
        k: waits.get(k, 0) for k in ("day", "week", "later", "waiting")
    }
    documented = [v for v in detected if v.documented_at]
    mean_hours = sum(((v.documented_at - v.detection.detected_at).total_seconds() for v in documented), 0.0) / 3600
    assert summary["documentation_hours"] == str(Decimal(mean_hours / len(documented)).quantize(Decimal("0.1")))

    per_pathway = Counter(e.version.pathway.code for e in episodes)
    signals = defaultdict(set)
    for v in variances:
        if v.step_id and v.reason_id:
            signals[(v.step.version.pathway.code, v.step.code, v.reason.display)].add(v.episode_id)
    expected_signals = {
        (f"{p}/{s}", reason, len(eps))
        for (p, s, reason), eps in signals.items()
        if Decimal(len(eps)) / per_pathway[p] > Decimal("0.05")
    }
    got_signals = {(r["key"], r["reason"], r["episodes"]) for r in tables["revision_signals"]["rows"]}
    assert got_signals == expected_signals and expected_signals

    def counted(key):
        """Episodes, those with a variance, variances and unexplained ones, by ``key(episode)``."""
        out = defaultdict(lambda: [0, 0, 0, 0])
        for e in episodes:
            mine = by_episode.get(e.pk, [])
            row = out[key(e)]
            row[0] += 1
            row[1] += bool(mine)
            row[2] += len(mine)
            row[3] += sum(v.status == "unexplained" for v in mine)
        return dict(out)

    def reported(rows, key):
        return {key(r): [r["episodes"], r["with_variance"], r["variances"], r["unexplained"]] for r in rows}

    assert reported(tables["by_pathway"]["rows"], lambda r: r["key"]) == counted(lambda e: e.version.pathway.code)
    assert reported(tables["by_unit"]["rows"], lambda r: r["key"]) == counted(lambda e: e.org_unit.code)
    # A clinician's counts leave system-caused departures out (the organisation's), counted apart.
    clinicians = defaultdict(lambda: [0, 0, 0, 0, 0])
    for e in episodes:
        every = by_episode.get(e.pk, [])
        mine = [v for v in every if v.cause != Variance.Cause.SYSTEM]
        row = clinicians[(e.responsible_clinician_id, e.org_unit_id)]
        row[0] += 1
        row[1] += bool(mine)
        row[2] += len(mine)
        row[3] += sum(v.status == "unexplained" for v in mine)
        row[4] += len(every) - len(mine)
    assert {
        (r["clinician_id"], r["org_unit_id"]): [r[k] for k in ("episodes", "with_variance", "variances", "unexplained")]
        + [r["system"]]
        for r in tables["by_clinician"]["rows"]
    } == dict(clinicians)
    assert sum(row[4] for row in clinicians.values()) > 0  # there were system-caused departures to leave out
    assert "system-caused" in tables["by_clinician"]["description"]


# --- cost report -------------------------------------------------------------------------


def independent_costs(episodes, pathways):
    """DOMAIN.md section 4 by hand: E, A, price variance and cost by cause per closed episode."""
    rates = {}
    steps = {}
    for p in pathways:
        version = p["version"]
        steps[version.pk] = list(version.steps.prefetch_related("planned_resources__resource").order_by("order"))
        for step in steps[version.pk]:
            for pr in step.planned_resources.all():
                rates[pr.resource_id] = pr.resource.rates.get().rate
    out = {}
    for e in episodes:
        if e.status == "active":
            continue
        los = (timezone.localtime(e.ended_at).date() - timezone.localtime(e.started_at).date()).days
        events = list(e.events.prefetch_related("quantities").all())
        variances = sorted(
            (v for v in e.variances.all() if v.status != "withdrawn"), key=lambda v: (v.occurred_at, v.pk)
        )
        expected = actual = price = Decimal("0")
        cause = defaultdict(Decimal)
        for step in steps[e.version_id]:
            for pr in step.planned_resources.all():
                rate = rates[pr.resource_id]
                per = pr.quantity * pr.headcount
                line_expected = step.expected_count * per * rate
                if step.per_day:
                    used, line_actual = los * per, los * per * rate
                else:
                    used = line_actual = line_price = Decimal("0")
                    for ev in events:
                        if ev.step_id != step.pk:
                            continue
                        q = next((q for q in ev.quantities.all() if q.resource_id == pr.resource_id), None)
                        qty = q.quantity * q.headcount if q else per
                        unit_price = q.unit_cost if q and q.unit_cost is not None else rate
                        used += qty
                        line_actual += qty * unit_price
                        line_price += qty * (unit_price - rate)
                    price += line_price
                expected += line_expected
                actual += line_actual
                if line_actual != line_expected:
                    # Which record explains this step x resource: one on the step, about this resource or
                    # none; a timing departure only a per-day step's stay, an omission only less use.
                    def explains(v, step=step, pr=pr, used=used, planned=step.expected_count * per):
                        if v.step_id != step.pk or v.resource_id not in (None, pr.resource_id):
                            return False
                        if v.variance_type in ("delay", "early", "sequence"):
                            return step.per_day
                        return v.variance_type != "omission" or used < planned

                    eligible = [v for v in variances if explains(v)]
                    explaining = next((v for v in eligible if v.resource_id), None) or next(iter(eligible), None)
                    if explaining is None and step.per_day and los > step.expected_count:
                        # Extra nights no record on the stay explains: a documented delay on a step,
                        # about no particular resource; a system-caused one first, else the earliest.
                        delays = [
                            v
                            for v in variances
                            if v.step_id and v.variance_type == "delay" and v.cause and v.resource_id is None
                        ]
                        explaining = next((v for v in delays if v.cause == "system"), None) or next(iter(delays), None)
                    # A step done more often than planned (its expected count, whole, at least once) and
                    # using more than planned is a repeat, not a departure: its own category when no record explains it.
                    done = sum(ev.step_id == step.pk for ev in events)
                    repeat = (
                        not step.per_day
                        and done > max(1, math.ceil(step.expected_count))
                        and used > step.expected_count * per
                    )
                    if explaining is not None:
                        cause[explaining.cause or "unexplained"] += line_actual - line_expected
                    elif repeat:  # what the repeat used; a dearer price is no repeat's doing
                        cause["repeat"] += line_actual - line_expected - line_price
                        cause["unexplained"] += line_price
                    else:
                        cause["unexplained"] += line_actual - line_expected
        out[e.pk] = {"expected": expected, "actual": actual, "price": price, "cause": cause, "los": los, "episode": e}
    return out


@pytest.mark.parametrize("params", SCOPES)
def test_it_costs_episodes_as_plain_python_does(dataset, params):
    episodes = in_scope(params)
    costs = independent_costs(episodes, dataset.pathways)

    result = cost_report(ReportParameters.from_dict(params))
    summary, tables = result["summary"], result["tables"]

    assert summary["episodes"] == len(costs) > 50
    assert summary["active"] == sum(e.status == "active" for e in episodes)
    expected = sum(c["expected"] for c in costs.values())
    actual = sum(c["actual"] for c in costs.values())
    assert cents(summary["expected"]) == cents(expected)
    assert cents(summary["actual"]) == cents(actual)
    assert cents(summary["variance"]) == cents(actual - expected)
    assert cents(summary["price"]) == cents(sum(c["price"] for c in costs.values()))

    causes = defaultdict(Decimal)
    for c in costs.values():
        for cause, amount in c["cause"].items():
            causes[cause] += amount
    assert {k: cents(r["amount"]) for k, r in rows_by_key(tables["by_cause"]).items()} == {
        k: cents(causes.get(k, 0)) for k in ("patient", "clinician", "system", "community", "unexplained", "repeat")
    }
    assert causes["repeat"] and causes["unexplained"]  # the generated data has both
    assert rows_by_key(tables["by_cause"])["repeat"]["label"] == "Repeated steps"
    # Not "Unexplained", which is a variance's status (waiting for a reason) on the same dashboard.
    assert rows_by_key(tables["by_cause"])["unexplained"]["label"] == "No cause recorded"
    assert cents(sum(Decimal(r["amount"]) for r in tables["by_component"]["rows"])) == cents(actual - expected)

    def grouped(key):
        out = defaultdict(lambda: [0, Decimal("0"), Decimal("0")])
        for c in costs.values():
            g = out[key(c["episode"])]
            g[0] += 1
            g[1] += c["expected"]
            g[2] += c["actual"]
        return {k: (n, cents(e), cents(a)) for k, (n, e, a) in out.items()}

    def reported(table):
        return {k: (r["episodes"], cents(r["expected"]), cents(r["actual"])) for k, r in rows_by_key(table).items()}

    assert reported(tables["by_pathway"]) == grouped(lambda e: e.version.pathway.code)
    assert reported(tables["by_month"]) == grouped(lambda e: timezone.localtime(e.started_at).strftime("%Y-%m"))
    assert reported(tables["by_unit"]) == grouped(lambda e: e.org_unit.code)
    # A unit keeps its whole variance; a clinician's leaves the system-caused part out, shown apart.
    for c in costs.values():
        c["system"] = c["cause"].get("system", Decimal(0))
    for unit in tables["by_unit"]["rows"]:
        in_unit = [c for c in costs.values() if c["episode"].org_unit.code == unit["key"]]
        assert cents(unit["variance"]) == cents(sum(c["actual"] - c["expected"] for c in in_unit))
    clinicians = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for c in costs.values():
        mine = clinicians[(c["episode"].responsible_clinician_id, c["episode"].org_unit_id)]
        mine[0] += c["actual"] - c["expected"] - c["system"]
        mine[1] += c["system"]
    assert {
        (r["clinician_id"], r["org_unit_id"]): [cents(r["variance"]), cents(r["system"])]
        for r in tables["by_clinician"]["rows"]
    } == {k: [cents(v), cents(s)] for k, (v, s) in clinicians.items()}
    assert any(s for _v, s in clinicians.values())  # some system-caused variance to leave out
    assert not {"price", "usage", "los"} & {k for r in tables["by_clinician"]["rows"] for k in r}

    los = defaultdict(list)
    for c in costs.values():
        los[c["episode"].version.pathway.code].append(c["los"])
    assert {k: r["avg_los"] for k, r in rows_by_key(tables["los"]).items()} == {
        k: str(Decimal(sum(v) / len(v)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) for k, v in los.items()
    }

    for vtype in ("delay", "omission"):
        with_it = [c for c in costs.values() if any(v.variance_type == vtype for v in c["episode"].variances.all())]
        without = [c for c in costs.values() if c not in with_it]
        for side, group in (("with", with_it), ("without", without)):
            row = rows_by_key(tables["outcomes"])[f"{vtype}/{side}"]
            known = [c for c in group if c["episode"].readmitted_30d is not None]
            readmitted = sum(c["episode"].readmitted_30d for c in known)
            assert row["episodes"] == len(group)
            assert row["readmission_share"] == str((Decimal(readmitted) / len(known)).quantize(Decimal("0.0001")))
            assert cents(row["avg_cost"]) == cents(sum(c["actual"] for c in group) / len(group))


def test_it_refreshes_only_the_episodes_that_changed(dataset):
    params = ReportParameters.from_dict(SCOPES[0])
    cost_report(params)
    computed = dict(EpisodeCost.objects.values_list("pk", "computed_at"))
    changed = Episode.objects.filter(pk__in=list(computed)[:3])
    changed.update(updated_at=timezone.now() + timedelta(seconds=1))

    cost_report(params)

    again = dict(EpisodeCost.objects.values_list("pk", "computed_at"))
    assert sorted(pk for pk in computed if again[pk] != computed[pk]) == sorted(changed.values_list("pk", flat=True))


def test_it_runs_a_fixed_number_of_queries_whatever_the_number_of_episodes(org, alice):
    hip, gall = two_pathways(org["ORTHO"])
    params = ReportParameters.from_dict(SCOPES[0])
    counts = []
    for seed, n in ((1, 40), (2, 400)):
        generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice], n=n, seed=seed)
        cost_report(params)  # refresh summaries first: this test counts the report's own queries
        with CaptureQueriesContext(connection) as variance_queries:
            variance_report(params)
        with CaptureQueriesContext(connection) as cost_queries:
            cost_report(params)
        counts.append((len(variance_queries), len(cost_queries)))
    assert counts[0] == counts[1]
    assert counts[0][0] <= 30 and counts[0][1] <= 30


def test_an_episode_moved_to_another_unit_leaves_the_old_units_report(dataset, org):
    params = ReportParameters.from_dict({**SCOPES[0], "org_unit": "ORTHO-W7", "pathways": []})
    before = cost_report(params)["summary"]["episodes"]
    moved = (
        Episode.objects.filter(org_unit=org["ORTHO-W7"])
        .exclude(status="active")
        .filter(started_at__date__gte=date(2025, 6, 2), started_at__date__lte=date(2025, 12, 30))
        .first()
    )
    Episode.objects.filter(pk=moved.pk).update(org_unit=org["ED"], updated_at=timezone.now() + timedelta(seconds=1))

    after = cost_report(params)["summary"]["episodes"]

    assert after == before - 1
    assert EpisodeCost.objects.get(pk=moved.pk).org_unit == org["ED"]


def test_steps_and_cost_drivers_add_up_across_pathway_versions(org, alice, dora):
    """A pathway's versions have steps of their own; the report shows one row per step code.

    Half the episodes follow version 1 and half version 2 (where the operation was
    renamed). Each code's row adds up both versions' lines, and its episode count
    is the number of episodes with a line on it, whichever version they followed.
    """
    from pathways.services import pathway_version_draft, pathway_version_publish, step_update

    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice], n=120, seed=3)
    draft = pathway_version_draft(pathway=hip["pathway"], actor=dora)
    step_update(step=draft.steps.get(code="OP"), actor=dora, name="Total hip replacement")
    version_2 = pathway_version_publish(version=draft, actor=dora, note="Operation renamed")
    generate_dataset(pathways=[{"version": version_2}], units=[org["ORTHO"]], clinicians=[alice], n=120, seed=4)

    tables = cost_report(ReportParameters.from_dict(SCOPES[0]))["tables"]

    expected = defaultdict(lambda: {"episodes": set(), "expected": Decimal(0), "actual": Decimal(0), "usage": set()})
    drivers = defaultdict(lambda: {"episodes": set(), "variance": Decimal(0)})
    versions = defaultdict(set)
    lines = EpisodeCostLine.objects.filter(
        episode_cost__org_unit=org["ORTHO"],
        episode_cost__started_on__gte=date(2025, 6, 1),
        episode_cost__started_on__lte=date(2025, 12, 31),
    ).select_related("step__version__pathway", "episode_cost__pathway")
    for line in lines:
        pathway = line.episode_cost.pathway.code
        code = line.step.code if line.step else "OFF-PATHWAY"
        if line.step:
            versions[f"{pathway}/{code}"].add(line.step.version.number)
        row = expected[f"{pathway}/{code}"]
        row["episodes"].add(line.episode_cost_id)
        row["expected"] += line.standard_cost
        row["actual"] += line.actual_cost
        if line.usage_variance:
            row["usage"].add(line.episode_cost_id)
        driver = drivers[(f"{pathway}/{code}", line.resource.name)]
        if line.actual_cost != line.standard_cost:  # a driver counts the episodes its variance comes from
            driver["episodes"].add(line.episode_cost_id)
        driver["variance"] += line.actual_cost - line.standard_cost

    assert versions["HIP/OP"] == {1, 2}
    by_step = rows_by_key(tables["by_step"])
    assert {
        k: (r["episodes"], cents(r["expected"]), cents(r["actual"]), r["cells"]["usage"]) for k, r in by_step.items()
    } == {
        k: (len(r["episodes"]), cents(r["expected"]), cents(r["actual"]), len(r["usage"])) for k, r in expected.items()
    }
    # The name of a renamed step is the one that sorts last, from whichever version has it.
    assert by_step["HIP/OP"]["label"] == "HIP · Total hip replacement"
    reported = [(r["key"], r["resource"], r["episodes"], Decimal(r["variance"])) for r in tables["drivers"]["rows"]]
    assert [v for *_, v in reported] == sorted((v for *_, v in reported), reverse=True)
    assert len(reported) == min(10, len(drivers))
    shown = {(key, resource) for key, resource, *_ in reported}
    assert all(cents(d["variance"]) <= reported[-1][3] for k, d in drivers.items() if k not in shown)
    assert {(k, res, n, cents(v)) for k, res, n, v in reported} <= {
        (key, resource, len(d["episodes"]), cents(d["variance"])) for (key, resource), d in drivers.items()
    }


def test_a_cost_driver_off_the_pathway_counts_episodes_not_activities(org, alice):
    """Two activities off the pathway on the same resource in one episode are two lines but one episode."""
    from variances import services

    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice], n=40, seed=8)
    episode = (
        Episode.objects.filter(version=hip["version"], started_at__date__range=(date(2025, 6, 1), date(2025, 12, 1)))
        .exclude(status=Episode.Status.ACTIVE)  # only closed episodes are costed
        .first()
    )
    for hours in (1, 2):
        services.event_record(
            episode=episode,
            activity="Return to theatre",
            occurred_at=episode.started_at + timedelta(hours=hours),
            source="manual",
            quantities=[{"resource": "PROSTHESIS", "quantity": "1", "unit_cost": "100000"}],
            actor=alice,
        )

    drivers = cost_report(ReportParameters.from_dict(SCOPES[0]))["tables"]["drivers"]["rows"]

    top = drivers[0]
    assert (top["key"], top["resource"]) == ("HIP/OFF-PATHWAY", hip["PROSTHESIS"].name)
    assert (top["episodes"], cents(top["actual"])) == (1, Decimal("200000.00"))
    assert EpisodeCostLine.objects.filter(episode_cost__episode=episode, step__isnull=True).count() == 2
