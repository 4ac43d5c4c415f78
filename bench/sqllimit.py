"""Hand-written SQL for the reports' figures: the database's own limit for them.

Each function computes, in as few statements as PostgreSQL allows (one pass per
table family, ``GROUPING SETS`` for the breakdowns), the same figures as
``costing.reports``: the variance report from episodes and variances, and the
cost report's expected, actual and variance (price, usage, length of stay) *from
the raw events, quantities, plans and rates*, with no summary table. The
benchmark times them beside the product's reports and checks that the figures
agree.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

FY = "(extract(year from {d})::int - CASE WHEN extract(month from {d}) < 4 THEN 1 ELSE 0 END)"


def _rows(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def scope_params(scope) -> dict:
    """The report's scope (``costing.reports.Scope``) as query parameters."""
    return {
        "units": list(scope.units),
        "start": scope.start,
        "end": scope.end,
        "versions": list(scope.versions) if scope.params.pathways else None,
        "tz": str(scope.start.tzinfo),
    }


EPISODE_SCOPE = """
    e.org_unit_id = ANY(%(units)s) AND e.started_at >= %(start)s AND e.started_at < %(end)s
    AND (%(versions)s::bigint[] IS NULL OR e.version_id = ANY(%(versions)s::bigint[]))
"""

VARIANCE_EPISODES = f"""
WITH flags AS (
    SELECT v.episode_id,
           bool_or(v.status = 'unexplained') AS unexplained,
           bool_or(v.status = 'reviewed' AND v.justified IS FALSE) AS unjustified,
           bool_or(v.status = 'documented') AS awaiting
    FROM variances_variance v JOIN variances_episode e ON e.id = v.episode_id
    WHERE v.status <> 'withdrawn' AND {EPISODE_SCOPE}
    GROUP BY v.episode_id
)
SELECT GROUPING(pathway_id, month, org_unit_id, responsible_clinician_id) AS g,
       pathway_id, month, org_unit_id, responsible_clinician_id,
       count(*) AS episodes,
       count(*) FILTER (WHERE has_variance) AS with_variance,
       count(*) FILTER (WHERE status = 'active') AS active,
       count(*) FILTER (WHERE NOT has_variance) AS on_pathway,
       count(*) FILTER (WHERE unexplained) AS undocumented,
       count(*) FILTER (WHERE NOT unexplained AND unjustified) AS unjustified,
       count(*) FILTER (WHERE NOT unexplained AND NOT unjustified AND awaiting) AS awaiting_review,
       count(*) FILTER (WHERE NOT unexplained AND NOT unjustified AND NOT awaiting) AS justified
FROM (
    SELECT ver.pathway_id, date_trunc('month', e.started_at AT TIME ZONE %(tz)s)::date AS month,
           e.org_unit_id, e.responsible_clinician_id, e.status,
           f.episode_id IS NOT NULL AS has_variance, f.unexplained, f.unjustified, f.awaiting
    FROM variances_episode e
    JOIN pathways_pathwayversion ver ON ver.id = e.version_id
    LEFT JOIN flags f ON f.episode_id = e.id
    WHERE {EPISODE_SCOPE}
) x
GROUP BY GROUPING SETS ((), (pathway_id), (month), (org_unit_id), (responsible_clinician_id, org_unit_id))
"""

VARIANCE_VARIANCES = f"""
SELECT GROUPING(variance_type, cause, reason_id, pathway_id, step_code, month, org_unit_id, responsible_clinician_id) AS g,
       variance_type, cause, reason_id, pathway_id, step_code, month, org_unit_id, responsible_clinician_id,
       count(*) AS variances,
       count(DISTINCT episode_id) AS episodes,
       count(*) FILTER (WHERE status = 'unexplained') AS unexplained,
       count(*) FILTER (WHERE valence = 'positive') AS positive,
       count(DISTINCT episode_id) FILTER (WHERE valence = 'positive') AS positive_episodes,
       count(*) FILTER (WHERE detected_at IS NOT NULL) AS detected,
       count(DISTINCT episode_id) FILTER (WHERE detected_at IS NOT NULL) AS detected_episodes,
       count(*) FILTER (WHERE documented_at <= detected_at + interval '1 day') AS day,
       count(*) FILTER (WHERE documented_at > detected_at + interval '1 day'
                        AND documented_at <= detected_at + interval '7 days') AS week,
       count(*) FILTER (WHERE documented_at > detected_at + interval '7 days') AS later,
       avg(documented_at - detected_at) AS waited
FROM (
    SELECT v.variance_type, v.cause, v.reason_id, ver.pathway_id, s.code AS step_code,
           date_trunc('month', e.started_at AT TIME ZONE %(tz)s)::date AS month, e.org_unit_id,
           e.responsible_clinician_id, v.episode_id, v.status, v.valence, v.documented_at, d.detected_at
    FROM variances_variance v
    JOIN variances_episode e ON e.id = v.episode_id
    JOIN pathways_pathwayversion ver ON ver.id = e.version_id
    LEFT JOIN variances_detection d ON d.id = v.detection_id
    LEFT JOIN pathways_step s ON s.id = v.step_id
    WHERE v.status <> 'withdrawn' AND {EPISODE_SCOPE}
) x
GROUP BY GROUPING SETS (
    (), (variance_type), (cause), (reason_id), (pathway_id), (pathway_id, step_code), (month), (org_unit_id),
    (responsible_clinician_id, org_unit_id), (pathway_id, step_code, reason_id), (pathway_id, step_code, variance_type)
)
"""


def variance_figures(scope) -> dict:
    """The variance report's figures in two statements (episodes, then variances)."""
    params = scope_params(scope)
    return {"episodes": _rows(VARIANCE_EPISODES, params), "variances": _rows(VARIANCE_VARIANCES, params)}


# GROUPING() bits, highest first, for the variance statement's eight grouping columns.
_VARIANCE_BITS = ["variance_type", "cause", "reason_id", "pathway_id", "step_code", "month", "org_unit_id", "clinician"]


def _grouped_by(g: int, names: list[str]) -> tuple[str, ...]:
    return tuple(name for i, name in enumerate(names) if not g & (1 << (len(names) - 1 - i)))


def variance_headline(figures: dict, *, pathway_codes: dict[int, str]) -> dict:
    """The SQL figures shaped as the report's headline figures, for comparison."""
    episode_bits = ["pathway_id", "month", "org_unit_id", "clinician"]
    out: dict = {"adherence": {}, "by_type": {}, "by_cause": {}, "by_step": {}, "trend": {}, "by_unit": {}}
    for row in figures["episodes"]:
        grouped = _grouped_by(row["g"], episode_bits)
        if grouped == ():
            out["summary"] = {k: row[k] for k in ("episodes", "with_variance", "active")}
            out["adherence"] = {
                k: row[k] for k in ("on_pathway", "justified", "awaiting_review", "unjustified", "undocumented")
            }
        elif grouped == ("month",):
            out["trend"][row["month"].strftime("%Y-%m")] = [row["episodes"], row["with_variance"]]
        elif grouped == ("org_unit_id",):
            out["by_unit"][row["org_unit_id"]] = [row["episodes"], row["with_variance"]]
    for row in figures["variances"]:
        grouped = _grouped_by(row["g"], _VARIANCE_BITS)
        if grouped == ():
            out["summary"].update(
                variances=row["variances"], unexplained=row["unexplained"], positive=row["positive"],
                detected=row["detected"],
            )  # fmt: skip
        elif grouped == ("variance_type",):
            out["by_type"][row["variance_type"]] = [row["variances"], row["episodes"]]
        elif grouped == ("cause",):
            out["by_cause"][row["cause"]] = [row["variances"], row["episodes"]]
        elif grouped == ("pathway_id", "step_code") and row["step_code"] is not None:
            key = f"{pathway_codes[row['pathway_id']]}/{row['step_code']}"
            out["by_step"][key] = [row["variances"], row["episodes"], row["unexplained"]]
        elif grouped == ("month",):
            out["trend"].setdefault(row["month"].strftime("%Y-%m"), [0, 0]).append(row["variances"])
    for month in out["trend"].values():
        if len(month) == 2:
            month.append(0)
    return out


def report_variance_headline(result: dict) -> dict:
    """The same figures taken from ``costing.reports.variance_report``'s result."""
    tables = result["tables"]
    summary = result["summary"]
    return {
        "summary": {
            k: summary[k]
            for k in ("episodes", "with_variance", "active", "variances", "unexplained", "positive", "detected")
        },  # fmt: skip
        "adherence": {row["key"]: row["episodes"] for row in tables["adherence"]["rows"]},
        "by_type": {row["key"]: [row["variances"], row["episodes"]] for row in tables["by_type"]["rows"]},
        "by_cause": {row["key"]: [row["variances"], row["episodes"]] for row in tables["by_cause"]["rows"]},
        "by_step": {
            row["key"]: [row["variances"], row["episodes"], row["unexplained"]] for row in tables["by_step"]["rows"]
        },
        "trend": {
            row["key"]: [row["episodes"], row["with_variance"], row["variances"]] for row in tables["trend"]["rows"]
        },
        "by_unit": {row["org_unit_id"]: [row["episodes"], row["with_variance"]] for row in tables["by_unit"]["rows"]},
    }


# --- cost ----------------------------------------------------------------------------------------

COST = f"""
WITH ep AS (
    SELECT e.id, e.version_id, e.org_unit_id, ver.pathway_id,
           (e.started_at AT TIME ZONE %(tz)s)::date AS start_day,
           (e.ended_at AT TIME ZONE %(tz)s)::date - (e.started_at AT TIME ZONE %(tz)s)::date AS los,
           {FY.format(d="(e.started_at AT TIME ZONE %(tz)s)::date")} AS fy
    FROM variances_episode e JOIN pathways_pathwayversion ver ON ver.id = e.version_id
    WHERE e.status <> 'active' AND {EPISODE_SCOPE}
),
rates AS (
    -- The rate in force in each financial year: the latest set for that year or before. An episode is
    -- costed at the rates of the year it started in, expected and actual alike (costing rules v5).
    SELECT r.id AS resource_id, y.fy,
           COALESCE((SELECT c.rate FROM costing_costrate c WHERE c.resource_id = r.id AND c.financial_year <= y.fy
                     ORDER BY c.financial_year DESC LIMIT 1), 0) AS rate
    FROM pathways_resource r CROSS JOIN generate_series(1990, 2100) AS y(fy)
),
planned AS (
    SELECT s.id AS step_id, s.version_id, s.per_day, s.expected_count AS f, p.resource_id,
           p.quantity * p.headcount AS per_occ
    FROM pathways_step s JOIN pathways_plannedresource p ON p.step_id = s.id
),
-- What events on a per-day step (a ward stay) recorded of a planned resource: the days of the stay
-- they fall on (each such day's plan is replaced once, by the day's total) and what they used.
stay_use AS (
    SELECT ev.episode_id, pl.step_id, pl.resource_id,
           count(DISTINCT d.day) FILTER (WHERE d.day >= ep.start_day AND d.day - ep.start_day < ep.los) AS days,
           sum(q.quantity * q.headcount) AS quantity,
           sum(q.quantity * q.headcount * COALESCE(q.unit_cost, rs.rate)) AS cost,
           sum(q.quantity * q.headcount * rs.rate) AS at_standard
    FROM variances_stepevent ev
    JOIN ep ON ep.id = ev.episode_id
    JOIN planned pl ON pl.step_id = ev.step_id AND pl.per_day
    JOIN variances_eventquantity q ON q.event_id = ev.id AND q.resource_id = pl.resource_id
    JOIN rates rs ON rs.resource_id = pl.resource_id AND rs.fy = ep.fy
    CROSS JOIN LATERAL (SELECT (ev.occurred_at AT TIME ZONE %(tz)s)::date AS day) d
    GROUP BY ev.episode_id, pl.step_id, pl.resource_id
),
-- Planned lines: the standard; per-day lines at the actual length of stay, days with events at their use.
standard AS (
    SELECT ep.id AS episode_id,
           sum(pl.f * pl.per_occ * rs.rate) AS expected,
           sum(CASE WHEN pl.per_day THEN (ep.los - pl.f) * pl.per_occ * rs.rate ELSE 0 END) AS los_variance,
           sum(CASE WHEN pl.per_day
               THEN (ep.los - COALESCE(su.days, 0)) * pl.per_occ * rs.rate + COALESCE(su.cost, 0)
               ELSE 0 END) AS actual,
           sum(CASE WHEN pl.per_day THEN COALESCE(su.cost, 0) - COALESCE(su.at_standard, 0) ELSE 0 END) AS price
    FROM ep
    JOIN planned pl ON pl.version_id = ep.version_id
    JOIN rates rs ON rs.resource_id = pl.resource_id AND rs.fy = ep.fy
    LEFT JOIN stay_use su ON su.episode_id = ep.id AND su.step_id = pl.step_id AND su.resource_id = pl.resource_id
    GROUP BY ep.id
),
-- Each event of a planned step that is not per day, for each planned resource: its actual quantity
-- (or the plan's) at its own price (or the standard rate).
performed AS (
    SELECT ev.episode_id,
           sum(COALESCE(q.quantity * q.headcount, pl.per_occ) * COALESCE(q.unit_cost, rs.rate)) AS actual,
           sum(COALESCE(q.quantity * q.headcount, pl.per_occ) * (COALESCE(q.unit_cost, rs.rate) - rs.rate)) AS price
    FROM variances_stepevent ev
    JOIN ep ON ep.id = ev.episode_id
    JOIN planned pl ON pl.step_id = ev.step_id AND NOT pl.per_day
    LEFT JOIN variances_eventquantity q ON q.event_id = ev.id AND q.resource_id = pl.resource_id
    JOIN rates rs ON rs.resource_id = pl.resource_id AND rs.fy = ep.fy
    GROUP BY ev.episode_id
),
-- Resources an event used that its step did not plan, and activities off the pathway: all unplanned.
unplanned AS (
    SELECT ev.episode_id,
           sum(q.quantity * q.headcount * COALESCE(q.unit_cost, rs.rate)) AS actual,
           sum(q.quantity * q.headcount * (COALESCE(q.unit_cost, rs.rate) - rs.rate)) AS price
    FROM variances_eventquantity q
    JOIN variances_stepevent ev ON ev.id = q.event_id
    JOIN ep ON ep.id = ev.episode_id
    JOIN rates rs ON rs.resource_id = q.resource_id AND rs.fy = ep.fy
    WHERE NOT EXISTS (
        SELECT 1 FROM pathways_plannedresource p WHERE p.step_id = ev.step_id AND p.resource_id = q.resource_id
    )
    GROUP BY ev.episode_id
),
per_episode AS (
    SELECT ep.id, ep.pathway_id, ep.org_unit_id, date_trunc('month', ep.start_day)::date AS month,
           COALESCE(s.expected, 0) AS expected,
           COALESCE(s.actual, 0) + COALESCE(p.actual, 0) + COALESCE(u.actual, 0) AS actual,
           COALESCE(s.price, 0) + COALESCE(p.price, 0) + COALESCE(u.price, 0) AS price,
           COALESCE(s.los_variance, 0) AS los
    FROM ep
    LEFT JOIN standard s ON s.episode_id = ep.id
    LEFT JOIN performed p ON p.episode_id = ep.id
    LEFT JOIN unplanned u ON u.episode_id = ep.id
)
SELECT GROUPING(pathway_id, month, org_unit_id) AS g, pathway_id, month, org_unit_id,
       count(*) AS episodes, sum(expected) AS expected, sum(actual) AS actual, sum(price) AS price,
       sum(actual - expected - price - los) AS usage, sum(los) AS los
FROM per_episode
GROUP BY GROUPING SETS ((), (pathway_id), (month), (org_unit_id))
"""


def cost_figures(scope) -> list[dict]:
    """The cost report's headline figures from the raw data, in one statement."""
    return _rows(COST, scope_params(scope))


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.000001"))


def cost_headline(rows: list[dict], *, pathway_codes: dict[int, str]) -> dict:
    out: dict = {"by_pathway": {}, "by_month": {}, "by_unit": {}}
    for row in rows:
        figures = [row["episodes"], *(_money(row[k]) for k in ("expected", "actual", "price", "usage", "los"))]
        grouped = _grouped_by(row["g"], ["pathway_id", "month", "org_unit_id"])
        if grouped == ():
            out["summary"] = figures
        elif grouped == ("pathway_id",):
            out["by_pathway"][pathway_codes[row["pathway_id"]]] = figures
        elif grouped == ("month",):
            out["by_month"][row["month"].strftime("%Y-%m")] = figures
        else:
            out["by_unit"][row["org_unit_id"]] = figures
    out.setdefault("summary", [0, *(_money(0) for _ in range(5))])
    return out


def report_cost_headline(result: dict) -> dict:
    def figures(row):
        return [row["episodes"], *(_money(Decimal(row[k])) for k in ("expected", "actual", "price", "usage", "los"))]

    tables = result["tables"]
    return {
        "summary": figures(result["summary"]),
        "by_pathway": {row["key"]: figures(row) for row in tables["by_pathway"]["rows"]},
        "by_month": {row["key"]: figures(row) for row in tables["by_month"]["rows"]},
        "by_unit": {row["org_unit_id"]: figures(row) for row in tables["by_unit"]["rows"]},
    }


def differences(ours: dict, theirs: dict, path: str = "") -> list[str]:
    """Where two nested figure dicts differ (empty: they agree)."""
    out = []
    for key in sorted(set(ours) | set(theirs), key=str):
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{path}{key}.")
        elif a != b:
            out.append(f"{path}{key}: report {a} vs SQL {b}")
    return out
