"""The variance report and the cost report, computed by database aggregates.

Each report is a fixed number of ``GROUP BY`` queries over the episodes, variances
and cost summaries in scope, whatever the number of episodes: no Python loop over
episodes (the cost report first refreshes stale cost summaries, see
``costing/summaries.py``). Python only merges the grouped rows (tens or hundreds)
and shapes them into tables.

A result is JSON: ``summary`` figures, ``tables`` (each with titled, typed columns
and rows; every row says how many episodes it covers, which is what small-cell
suppression needs, see ``costing/suppression.py``) and ``notes``. Money is stored as
Decimal strings at full precision; rounding happens when it is displayed.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import (
    Avg,
    Case,
    Count,
    DateField,
    DecimalField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.functions import TruncMonth
from django.template.defaultfilters import pluralize
from django.utils import timezone

from accounts.models import OrgUnit, User
from config.routers import using_reports_replica
from pathways.models import Pathway, PathwayVersion, Resource, Step
from variances.models import Episode, Variance, variance_type_phrase

from .engine import TIMING_TYPES
from .models import EpisodeCost, EpisodeCostLine, ReportRun, financial_year_label, financial_year_of
from .period import period_analysis
from .summaries import episode_costs_refresh

ZERO = Decimal("0")
PERIOD_TOTALS = {"static_budget", "flexible_budget", "actual"}
# Each step's figures by organisational unit ("<pathway>/<step>": rows with ``org_unit_id``),
# for the step's drill-down, so that it shows the same run as the step's row. Not a table:
# not on dashboards or in exports, and result_for (costing/suppression.py) never passes it on.
STEP_UNITS = "step_units"
# Marks a per-clinician table whose figures leave system-caused variance out (shown apart). A
# result stored before has none: costing/suppression.py then withholds the figures that included it.
SYSTEM_APART = "system_apart"
# The step code under which a pathway's activities off the pathway are added up.
OFF_PATHWAY = "OFF-PATHWAY"
Progress = Callable[[int], None]

# Column kinds: how a value is stored and displayed. VARIANCE is money shown with
# U (adverse) or F (favourable); CUMULATIVE is a running share (Pareto).
TEXT, INT, MONEY, VARIANCE, SHARE, NUMBER, CUMULATIVE = (
    "text", "int", "money", "variance", "share", "number", "cumulative",
)  # fmt: skip

TYPE_LABELS = dict(Variance.Type.choices)
CAUSE_LABELS = dict(EpisodeCost.Cause.choices)
ADHERENCE = [
    ("on_pathway", "On pathway"),
    ("justified", "Documented and justified"),
    ("awaiting_review", "Documented, awaiting review"),
    ("unjustified", "Documented and unjustified"),
    ("undocumented", "Undocumented"),
]


# --- parameters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportParameters:
    """What a report covers: an org unit's subtree, some pathways (none = all), a period of start dates."""

    org_unit: str
    date_from: date
    date_to: date
    pathways: tuple[str, ...] = ()

    MAX_DAYS = 6 * 366

    @classmethod
    def from_dict(cls, data: dict) -> ReportParameters:
        errors = {}
        unit = str(data.get("org_unit") or "").strip()
        if not unit:
            errors["org_unit"] = "Choose the organisational unit the report covers."
        elif not OrgUnit.objects.filter(code=unit).exists():
            errors["org_unit"] = f"There is no organisational unit {unit!r}."
        dates = {}
        for name in ("date_from", "date_to"):
            value = data.get(name)
            try:
                dates[name] = value if isinstance(value, date) else date.fromisoformat(str(value))
            except ValueError:
                errors[name] = "Give a date as YYYY-MM-DD."
        if not errors and dates["date_from"] > dates["date_to"]:
            errors["date_to"] = "The end of the period is before its start."
        if not errors and (dates["date_to"] - dates["date_from"]).days > cls.MAX_DAYS:
            errors["date_to"] = "A report covers at most six years."
        raw = data.get("pathways") or []
        if isinstance(raw, str):
            raw = [raw]
        codes = tuple(sorted({str(code).strip().upper() for code in raw if str(code).strip()}))
        if codes:
            known = set(Pathway.objects.filter(code__in=codes).values_list("code", flat=True))
            unknown = [code for code in codes if code not in known]
            if unknown:
                errors["pathways"] = f"Unknown pathway: {', '.join(unknown)}."
        if errors:
            raise ValidationError(errors)
        return cls(org_unit=unit, date_from=dates["date_from"], date_to=dates["date_to"], pathways=codes)

    @classmethod
    def default_for(cls, unit: OrgUnit, *, today: date | None = None) -> ReportParameters:
        """The rolling twelve months to today: what nightly runs and "Run now" compute."""
        today = today or timezone.localdate()
        return cls(org_unit=unit.code, date_from=today - timedelta(days=364), date_to=today)

    def to_dict(self) -> dict:
        return {
            "org_unit": self.org_unit,
            "pathways": list(self.pathways),
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
        }

    def key(self, kind: str) -> str:
        """Identical requests have identical keys (and so join one live run)."""
        canonical = json.dumps({"kind": kind, **self.to_dict()}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def whole_financial_year(self) -> int | None:
        fy = financial_year_of(self.date_from)
        if self.date_from == date(fy, 4, 1) and self.date_to == date(fy + 1, 3, 31):
            return fy
        return None

    def describe(self, unit_name: str = "") -> str:
        pathways = ", ".join(self.pathways) if self.pathways else "all pathways"
        return (
            f"{unit_name or self.org_unit}, {pathways}, "
            f"episodes started {self.date_from:%-d %b %Y} to {self.date_to:%-d %b %Y}"
        )


class Scope:
    """The episodes a report covers, as filters that need no join (ids resolved once)."""

    def __init__(self, params: ReportParameters):
        self.params = params
        self.unit = OrgUnit.objects.get(code=params.org_unit)
        self.units = {u.pk: u for u in OrgUnit.objects.subtree_of([self.unit])}
        versions = PathwayVersion.objects.select_related("pathway")
        if params.pathways:
            versions = versions.filter(pathway__code__in=params.pathways)
        self.versions = {v.pk: v for v in versions}
        self.pathways = {v.pathway_id: v.pathway for v in self.versions.values()}
        tz = timezone.get_current_timezone()
        self.start = datetime.combine(params.date_from, time.min, tzinfo=tz)
        self.end = datetime.combine(params.date_to + timedelta(days=1), time.min, tzinfo=tz)

    def episode_q(self, prefix: str = "") -> Q:
        q = Q(
            **{
                f"{prefix}org_unit_id__in": list(self.units),
                f"{prefix}started_at__gte": self.start,
                f"{prefix}started_at__lt": self.end,
            }
        )
        if self.params.pathways:
            q &= Q(**{f"{prefix}version_id__in": list(self.versions)})
        return q

    def episodes(self) -> QuerySet:
        return Episode.objects.filter(self.episode_q())

    def variances(self) -> QuerySet:
        return Variance.objects.current().filter(self.episode_q("episode__"))

    def cost_q(self, prefix: str = "") -> Q:
        q = Q(
            **{
                f"{prefix}org_unit_id__in": list(self.units),
                f"{prefix}started_on__gte": self.params.date_from,
                f"{prefix}started_on__lte": self.params.date_to,
            }
        )
        if self.params.pathways:
            q &= Q(**{f"{prefix}pathway_id__in": list(self.pathways)})
        return q

    def costs(self) -> QuerySet:
        return EpisodeCost.objects.filter(self.cost_q())

    def lines(self) -> QuerySet:
        return EpisodeCostLine.objects.filter(self.cost_q("episode_cost__"))


# --- shaping -----------------------------------------------------------------------------------------


def money(value) -> str:
    """A Decimal as a plain string at full precision, without trailing zeros ("4167.125")."""
    text = format(Decimal(value if value is not None else ZERO), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def share(part, whole) -> str | None:
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")))


def number(value, places: str = "0.01") -> str | None:
    if value is None:
        return None
    return str(Decimal(str(value)).quantize(Decimal(places)))


def table(
    title: str,
    columns: list[tuple[str, str, str]],
    rows: list[dict],
    *,
    total: dict | None = None,
    partition: bool = False,
    individual: bool = False,
    description: str = "",
    link: str = "",
) -> dict:
    """A report table.

    ``partition``: each episode is in exactly one row, so the rows add up to the
    total. ``individual``: rows are named clinicians (privacy rules apply).
    ``link``: the kind of drill-down a row's ``key`` leads to ("pathway", "step").
    """
    return {
        "title": title,
        "description": description,
        "columns": [{"key": k, "label": label, "kind": kind} for k, label, kind in columns],
        "rows": rows,
        "total": total,
        "partition": partition,
        "individual": individual,
        "link": link,
    }


def _pareto(rows: list[dict], measure: str) -> None:
    """Sort descending on ``measure`` and add each row's cumulative share of the total."""
    rows.sort(key=lambda r: (-(r[measure] or 0), r["label"]))
    whole = sum(r[measure] or 0 for r in rows)
    running = 0
    for row in rows:
        running += row[measure] or 0
        row["cumulative"] = share(running, whole)


# What the variance report's episode and variance cells are grouped by; their other fields are counts.
CELL_DIMENSIONS = frozenset({"version_id", "month", "org_unit_id", "responsible_clinician_id"})


def _added_up(cells: list[dict], key: Callable[[dict], object]) -> dict:
    """The counts of ``cells`` added up by ``key(cell)``."""
    out: dict = {}
    if not cells:
        return out
    counts = [name for name in cells[0] if name not in CELL_DIMENSIONS]
    for cell in cells:
        group = key(cell)
        into = out.get(group)
        if into is None:
            out[group] = {name: cell[name] for name in counts}
        else:
            for name in counts:
                into[name] += cell[name]
    return out


def _month_label(value: date) -> str:
    """A month as ``YYYY-MM``: every month reaches here as a local date (from the database)."""
    return value.strftime("%Y-%m")


def _user_names(ids) -> dict[int, str]:
    users = User.objects.filter(pk__in=[i for i in ids if i]).only(
        "username", "display_name", "first_name", "last_name"
    )
    return {u.pk: str(u) for u in users}


def _meta(kind: str, scope: Scope) -> dict:
    params = scope.params
    return {
        "kind": kind,
        "parameters": params.to_dict(),
        "description": params.describe(scope.unit.name),
        "computed_at": timezone.now().isoformat(),
        "currency": settings.CURRENCY,
    }


# --- variance report -------------------------------------------------------------------------------


def variance_report(params: ReportParameters, progress: Progress | None = None) -> dict:
    """Departures from the pathways in scope: how many, which, why, how fast documented."""
    progress = progress or (lambda pct: None)
    with using_reports_replica():
        return _variance_report(params, progress)


def _variance_report(params: ReportParameters, progress: Progress) -> dict:
    scope = Scope(params)
    variances = scope.variances()
    current = Variance.objects.current().filter(episode_id=OuterRef("pk"))
    # A clinician's figures leave out system-caused departures (DOMAIN.md: they are the
    # organisation's), so each episode also says whether it has a departure of another cause.
    episodes = scope.episodes().annotate(
        has_variance=Exists(current), has_own_variance=Exists(current.exclude(cause=Variance.Cause.SYSTEM))
    )
    # The adherence split counts each episode's variances by status in one join, then
    # counts the episodes: PostgreSQL inlines the outer query and would evaluate an
    # EXISTS per status once for every filter naming it (2.5 s instead of 0.2 s at
    # 100,000 episodes; bench/reports.py).
    Status = Variance.Status
    counted = scope.episodes().annotate(
        n_current=Count("variances", filter=~Q(variances__status=Status.WITHDRAWN)),
        n_unexplained=Count("variances", filter=Q(variances__status=Status.UNEXPLAINED)),
        n_unjustified=Count("variances", filter=Q(variances__status=Status.REVIEWED, variances__justified=False)),
        n_awaiting=Count("variances", filter=Q(variances__status=Status.DOCUMENTED)),
    )
    adherence_filters = {
        "on_pathway": Q(n_current=0),
        "undocumented": Q(n_unexplained__gt=0),
        "unjustified": Q(n_unexplained=0, n_unjustified__gt=0),
        "awaiting_review": Q(n_unexplained=0, n_unjustified=0, n_awaiting__gt=0),
        "justified": Q(n_current__gt=0, n_unexplained=0, n_unjustified=0, n_awaiting=0),
    }
    head = counted.aggregate(
        episodes=Count("pk"),
        with_variance=Count("pk", filter=Q(n_current__gt=0)),
        active=Count("pk", filter=Q(status=Episode.Status.ACTIVE)),
        **{key: Count("pk", filter=condition) for key, condition in adherence_filters.items()},
    )
    counts = variances.aggregate(
        variances=Count("pk"),
        unexplained=Count("pk", filter=Q(status=Variance.Status.UNEXPLAINED)),
        positive=Count("pk", filter=Q(valence=Variance.Valence.POSITIVE)),
        positive_episodes=Count("episode", distinct=True, filter=Q(valence=Variance.Valence.POSITIVE)),
    )
    progress(20)
    n = head["episodes"]
    summary = {
        "label": "All episodes in scope",
        "episodes": n,
        "active": head["active"],
        "with_variance": head["with_variance"],
        "with_variance_share": share(head["with_variance"], n),
        "variances": counts["variances"],
        "variances_per_episode": number(Decimal(counts["variances"]) / n if n else None),
        "unexplained": counts["unexplained"],
        "positive": counts["positive"],
    }
    tables = {}
    tables["adherence"] = table(
        "Adherence",
        [("label", "Episodes that were", TEXT), ("episodes", "Episodes", INT), ("share", "Share", SHARE)],
        [{"key": key, "label": label, "episodes": head[key], "share": share(head[key], n)} for key, label in ADHERENCE],
        total={"label": "All episodes", "episodes": n, "share": share(n, n)},
        partition=True,
        description="Justified departure is good care: only undocumented departures are a data problem. "
        "An episode counts in the first group that applies from the bottom up.",
    )

    def grouped(field, labeller, title, label_heading, key_field=None):
        rows = []
        for row in (
            variances.values(field).annotate(variances=Count("pk"), episodes=Count("episode", distinct=True)).order_by()
        ):
            value = row[field]
            rows.append(
                {
                    "key": value if key_field is None else row[key_field],
                    "label": labeller(value),
                    "variances": row["variances"],
                    "episodes": row["episodes"],
                }
            )
        _pareto(rows, "variances")
        return table(
            title,
            [
                ("label", label_heading, TEXT),
                ("variances", "Variances", INT),
                ("episodes", "Episodes", INT),
                ("cumulative", "Cumulative share", CUMULATIVE),
            ],
            rows,
            total={"label": "All variances", "variances": counts["variances"], "episodes": head["with_variance"]},
        )

    tables["by_type"] = grouped("variance_type", lambda v: TYPE_LABELS.get(v, v), "Variances by type", "Type")
    tables["by_cause"] = grouped(
        "cause", lambda v: CAUSE_LABELS.get(v, v) if v else "Not yet recorded", "Variances by cause", "Cause"
    )
    reason_names = {}
    reason_rows = []
    for row in (
        variances.values("reason__code")
        .annotate(variances=Count("pk"), episodes=Count("episode", distinct=True), display=Max("reason__display"))
        .order_by()
    ):
        code = row["reason__code"] or ""
        reason_names[code] = row["display"] or "No reason yet (unexplained)"
        reason_rows.append(
            {"key": code, "label": reason_names[code], "variances": row["variances"], "episodes": row["episodes"]}
        )
    _pareto(reason_rows, "variances")
    tables["by_reason"] = table(
        "Variances by reason",
        [
            ("label", "Reason", TEXT),
            ("variances", "Variances", INT),
            ("episodes", "Episodes", INT),
            ("cumulative", "Cumulative share", CUMULATIVE),
        ],
        reason_rows,
        total={"label": "All variances", "variances": counts["variances"], "episodes": head["with_variance"]},
    )
    progress(40)

    # Episodes and variances counted once by version, month, unit and clinician: the
    # pathway, trend, unit and clinician tables add these cells up (an episode has one of
    # each), instead of four queries over the episodes and four over the variances.
    episode_cells = list(
        episodes.annotate(month=TruncMonth("started_at", output_field=DateField()))
        .values("version_id", "month", "org_unit_id", "responsible_clinician_id")
        .annotate(
            episodes=Count("pk"),
            with_variance=Count("pk", filter=Q(has_variance=True)),
            with_own_variance=Count("pk", filter=Q(has_own_variance=True)),
        )
        .order_by()
    )
    variance_cells = [
        {
            "version_id": row["episode__version_id"],
            "month": row["month"],
            "org_unit_id": row["episode__org_unit_id"],
            "responsible_clinician_id": row["episode__responsible_clinician_id"],
            "variances": row["variances"],
            "unexplained": row["unexplained"],
            "system": row["system"],
            "system_unexplained": row["system_unexplained"],
        }
        for row in variances.annotate(month=TruncMonth("episode__started_at", output_field=DateField()))
        .values("episode__version_id", "month", "episode__org_unit_id", "episode__responsible_clinician_id")
        .annotate(
            variances=Count("pk"),
            unexplained=Count("pk", filter=Q(status=Variance.Status.UNEXPLAINED)),
            system=Count("pk", filter=Q(cause=Variance.Cause.SYSTEM)),
            system_unexplained=Count("pk", filter=Q(cause=Variance.Cause.SYSTEM, status=Variance.Status.UNEXPLAINED)),
        )
        .order_by()
    ]

    # Pathways and their steps (the drill-down from pathway to step).
    def pathway_of(row):
        return scope.versions[row["version_id"]].pathway.code

    pathway_counts = _added_up(episode_cells, pathway_of)
    pathway_episodes = {code: row["episodes"] for code, row in pathway_counts.items()}
    pathway_with = {code: row["with_variance"] for code, row in pathway_counts.items()}
    pathway_variances = _added_up(variance_cells, pathway_of)
    names = dict(Pathway.objects.filter(code__in=list(pathway_episodes)).values_list("code", "name"))
    tables["by_pathway"] = table(
        "Pathways",
        [
            ("label", "Pathway", TEXT),
            ("episodes", "Episodes", INT),
            ("with_variance", "With variance", INT),
            ("with_variance_share", "Share with variance", SHARE),
            ("variances", "Variances", INT),
            ("unexplained", "Unexplained", INT),
        ],
        [
            {
                "key": code,
                "label": f"{code} {names.get(code, '')}".strip(),
                "episodes": pathway_episodes[code],
                "with_variance": pathway_with[code],
                "with_variance_share": share(pathway_with[code], pathway_episodes[code]),
                "variances": pathway_variances.get(code, {}).get("variances", 0),
                "unexplained": pathway_variances.get(code, {}).get("unexplained", 0),
            }
            for code in sorted(pathway_episodes)
        ],
        total={
            "label": "All pathways",
            "episodes": n,
            "with_variance": head["with_variance"],
            "variances": counts["variances"],
            "unexplained": counts["unexplained"],
        },  # fmt: skip
        partition=True,
        link="pathway",
    )
    step_rows = []
    # Counted by unit as well, and added up here: an episode is in one unit, so its step's
    # episode counts add up exactly, and the step's drill-down shows the same run's units.
    step_units: dict[str, list[dict]] = defaultdict(list)
    by_step: dict[tuple[str, str], dict] = {}
    for row in (
        variances.filter(step__isnull=False)
        .values("step__version__pathway__code", "step__code", "episode__org_unit_id")
        .annotate(
            variances=Count("pk"),
            episodes=Count("episode", distinct=True),
            unexplained=Count("pk", filter=Q(status=Variance.Status.UNEXPLAINED)),
            name=Max("step__name"),
        )
        .order_by()
    ):
        pathway, code = row["step__version__pathway__code"], row["step__code"]
        step_units[f"{pathway}/{code}"].append(
            {"org_unit_id": row["episode__org_unit_id"], "variances": row["variances"], "episodes": row["episodes"]}
        )
        into = by_step.setdefault((pathway, code), dict.fromkeys(("variances", "episodes", "unexplained"), 0))
        for name in ("variances", "episodes", "unexplained"):
            into[name] += row[name]
        into["name"] = max(into.get("name", ""), row["name"])
    for (pathway, code), row in by_step.items():
        row["step__code"] = code
        step_rows.append(
            {
                "key": f"{pathway}/{row['step__code']}",
                "pathway": pathway,
                "group": pathway,
                "label": f"{pathway} · {row['name']}",
                "variances": row["variances"],
                "episodes": row["episodes"],
                "unexplained": row["unexplained"],
                "episode_share": share(row["episodes"], pathway_episodes.get(pathway)),
            }
        )
    _pareto(step_rows, "variances")
    tables["by_step"] = table(
        "Variances by step",
        [
            ("label", "Step", TEXT),
            ("variances", "Variances", INT),
            ("episodes", "Episodes", INT),
            ("episode_share", "Share of the pathway's episodes", SHARE),
            ("unexplained", "Unexplained", INT),
            ("cumulative", "Cumulative share", CUMULATIVE),
        ],
        step_rows,
        link="step",
    )
    progress(55)

    # Monthly trend.
    month_episodes = {_month_label(m): row for m, row in _added_up(episode_cells, lambda row: row["month"]).items()}
    month_variances = {_month_label(m): row for m, row in _added_up(variance_cells, lambda row: row["month"]).items()}
    trend_rows = []
    for month in sorted(month_episodes):
        e, v = month_episodes[month], month_variances.get(month, {})
        trend_rows.append(
            {
                "key": month,
                "label": month,
                "episodes": e["episodes"],
                "with_variance": e["with_variance"],
                "with_variance_share": share(e["with_variance"], e["episodes"]),
                "variances": v.get("variances", 0),
                "unexplained": v.get("unexplained", 0),
            }
        )
    tables["trend"] = table(
        "Month by month",
        [
            ("label", "Month started", TEXT),
            ("episodes", "Episodes", INT),
            ("with_variance", "With variance", INT),
            ("with_variance_share", "Share with variance", SHARE),
            ("variances", "Variances", INT),
            ("unexplained", "Unexplained", INT),
        ],
        trend_rows,
        total={
            "label": "All months",
            "episodes": n,
            "with_variance": head["with_variance"],
            "variances": counts["variances"],
            "unexplained": counts["unexplained"],
        },  # fmt: skip
        partition=True,
    )
    progress(65)

    # Time from detection to documentation.
    detected = variances.filter(detection__isnull=False)
    waited = ExpressionWrapper(F("documented_at") - F("detection__detected_at"), output_field=DurationField())
    documented = Q(documented_at__isnull=False)
    buckets = {
        "day": documented & Q(documented_at__lte=F("detection__detected_at") + timedelta(days=1)),
        "week": documented
        & Q(documented_at__gt=F("detection__detected_at") + timedelta(days=1))
        & Q(documented_at__lte=F("detection__detected_at") + timedelta(days=7)),
        "later": documented & Q(documented_at__gt=F("detection__detected_at") + timedelta(days=7)),
        "waiting": Q(status=Variance.Status.UNEXPLAINED),
    }
    timing = detected.aggregate(
        detected=Count("pk"),
        episodes=Count("episode", distinct=True),
        average=Avg(waited, filter=documented),
        **{key: Count("pk", filter=condition) for key, condition in buckets.items()},
        **{f"{key}_episodes": Count("episode", distinct=True, filter=condition) for key, condition in buckets.items()},
    )
    average = timing["average"]
    summary["detected"] = timing["detected"]
    summary["documentation_hours"] = number(average.total_seconds() / 3600, "0.1") if average is not None else None
    tables["documentation_time"] = table(
        "From detection to documentation",
        [("label", "Detected variances documented", TEXT), ("variances", "Variances", INT), ("share", "Share", SHARE)],
        [
            {
                "key": key,
                "label": label,
                "variances": timing[key],
                "share": share(timing[key], timing["detected"]),
                "episodes": timing[f"{key}_episodes"],
            }  # fmt: skip
            for key, label in [
                ("day", "Within a day"),
                ("week", "Within a week"),
                ("later", "After more than a week"),
                ("waiting", "Not yet documented"),
            ]
        ],
        total={"label": "All detected", "variances": timing["detected"], "episodes": timing["episodes"]},
        description="Variances found by detection, by how long they waited for a reason.",
    )
    progress(75)

    # Positive variance: departures that helped the patient.
    positive_rows = [
        {
            "key": f"{row['step__version__pathway__code']}/{row['step__code']}" if row["step__code"] else "",
            "label": " · ".join(
                x
                for x in (row["step__version__pathway__code"], row["name"], TYPE_LABELS.get(row["variance_type"]))
                if x
            ),
            "variances": row["variances"],
            "episodes": row["episodes"],
        }
        for row in variances.filter(valence=Variance.Valence.POSITIVE)
        .values("step__version__pathway__code", "step__code", "variance_type")
        .annotate(variances=Count("pk"), episodes=Count("episode", distinct=True), name=Max("step__name"))
        .order_by()
    ]
    _pareto(positive_rows, "variances")
    tables["positive"] = table(
        "Positive variance",
        [("label", "Step and type", TEXT), ("variances", "Variances", INT), ("episodes", "Episodes", INT)],
        positive_rows,
        total={"label": "All positive", "variances": counts["positive"], "episodes": counts["positive_episodes"]},
        description="Departures recorded as good for the patient: candidates to adopt into the pathway.",
    )

    # Pathway revision signals: the same step and reason in many episodes.
    threshold = Decimal(str(settings.REVISION_SIGNAL_SHARE))
    signal_rows = []
    for row in (
        variances.filter(step__isnull=False, reason__isnull=False)
        .values("step__version__pathway__code", "step__code", "reason__code")
        .annotate(episodes=Count("episode", distinct=True), name=Max("step__name"), reason=Max("reason__display"))
        .order_by()
    ):
        pathway = row["step__version__pathway__code"]
        total = pathway_episodes.get(pathway, 0)
        if total and Decimal(row["episodes"]) / total > threshold:
            signal_rows.append(
                {
                    "key": f"{pathway}/{row['step__code']}",
                    "label": f"{pathway} · {row['name']}",
                    "reason": row["reason"],
                    "episodes": row["episodes"],
                    "pathway_episodes": total,
                    "share": share(row["episodes"], total),
                }
            )
    signal_rows.sort(key=lambda r: (-Decimal(r["share"]), r["label"]))
    tables["revision_signals"] = table(
        "Pathway revision signals",
        [
            ("label", "Step", TEXT),
            ("reason", "Reason", TEXT),
            ("episodes", "Episodes", INT),
            ("pathway_episodes", "Of the pathway's episodes", INT),
            ("share", "Share", SHARE),
        ],
        signal_rows,
        description=f"The same step departed from for the same reason in more than "
        f"{threshold * 100:.0f}% of a pathway's episodes: the pathway may need revising.",
        link="step",
    )
    progress(85)

    # Org units, and named clinicians (shown only as the privacy rules allow).
    unit_episodes = _added_up(episode_cells, lambda row: row["org_unit_id"])
    unit_variances = _added_up(variance_cells, lambda row: row["org_unit_id"])
    unit_rows = []
    for unit_id, row in unit_episodes.items():
        unit = scope.units[unit_id]
        v = unit_variances.get(unit_id, {})
        unit_rows.append(
            {
                "key": unit.code,
                "label": unit.name,
                "org_unit_id": unit.pk,
                "episodes": row["episodes"],
                "with_variance": row["with_variance"],
                "with_variance_share": share(row["with_variance"], row["episodes"]),
                "variances": v.get("variances", 0),
                "unexplained": v.get("unexplained", 0),
            }
        )
    unit_rows.sort(key=lambda r: r["label"])
    unit_columns = [
        ("episodes", "Episodes", INT),
        ("with_variance", "With variance", INT),
        ("with_variance_share", "Share with variance", SHARE),
        ("variances", "Variances", INT),
        ("unexplained", "Unexplained", INT),
    ]
    tables["by_unit"] = table(
        "Organisational units",
        [("label", "Unit", TEXT), *unit_columns],
        unit_rows,
        total={
            "label": "All units",
            "episodes": n,
            "with_variance": head["with_variance"],
            "variances": counts["variances"],
            "unexplained": counts["unexplained"],
        },  # fmt: skip
        partition=True,
    )

    def clinician_in_unit(row):
        return row["responsible_clinician_id"], row["org_unit_id"]

    clinician_episodes = _added_up(episode_cells, clinician_in_unit)
    clinician_variances = _added_up(variance_cells, clinician_in_unit)
    people = _user_names(who for who, _ in clinician_episodes)
    rows = []
    for (who, unit_id), row in clinician_episodes.items():
        v = clinician_variances.get((who, unit_id), {})
        system = v.get("system", 0)
        rows.append(
            {
                "key": f"{who or 0}/{scope.units[unit_id].code}",
                "label": people.get(who, "No responsible clinician"),
                "unit": scope.units[unit_id].name,
                "clinician_id": who,
                "org_unit_id": unit_id,
                "episodes": row["episodes"],
                # System-caused departures are the organisation's: not counted as the clinician's.
                "with_variance": row["with_own_variance"],
                "with_variance_share": share(row["with_own_variance"], row["episodes"]),
                "variances": v.get("variances", 0) - system,
                "unexplained": v.get("unexplained", 0) - v.get("system_unexplained", 0),
                "system": system,
            }
        )
    rows.sort(key=lambda r: (r["label"], r["unit"]))
    tables["by_clinician"] = table(
        "Clinicians",
        [
            ("label", "Clinician", TEXT),
            ("unit", "Unit", TEXT),
            ("episodes", "Episodes", INT),
            ("with_variance", "With variance (not system-caused)", INT),
            ("with_variance_share", "Share with variance", SHARE),
            ("variances", "Variances (not system-caused)", INT),
            ("unexplained", "Unexplained", INT),
            ("system", "System-caused (the organisation's)", INT),
        ],
        rows,
        individual=True,
        description="A clinician's departures leave out system-caused ones (a bed not available, a cancelled "
        "list): those are the organisation's, counted apart in the last column and never the clinician's. "
        "Unit, pathway and trust tables count every departure.",
    )
    tables["by_clinician"][SYSTEM_APART] = True
    progress(95)
    result = _meta(ReportRun.Kind.VARIANCE, scope)
    result["summary"] = summary
    result["tables"] = tables
    result[STEP_UNITS] = dict(step_units)
    result["notes"] = []
    if head["active"]:
        result["notes"].append(
            f"{head['active']} of the {n} episodes are still active: departures may still be found on them."
        )
    return result


# --- cost report -------------------------------------------------------------------------------------

_MONEY_SUMS = {
    "expected": Sum("expected"),
    "actual": Sum("actual"),
    "price": Sum("price_variance"),
    "usage": Sum("usage_variance"),
    "los": Sum("los_variance"),
    "capacity": Sum("capacity_variance"),
    "system": Sum("system_variance"),
}


# Variance components that only some of a row's episodes have: each cell carries how many
# episodes its figure comes from, so that a manager's view hides a figure that comes from
# 1 to 7 episodes even in a row that covers many (costing/suppression.py).
CELL_COMPONENTS = ("price", "usage", "los", "capacity", "system")
STEP_CELLS = ("price", "usage", "los")  # a step's lines carry no capacity or cause split


def _episode_counts(keys, over: str = "pk") -> dict:
    """``<key>_episodes``: how many episodes have a non-zero ``<key>_variance`` (``over`` names them)."""
    return {f"{key}_episodes": Count(over, distinct=over != "pk", filter=~Q(**{f"{key}_variance": 0})) for key in keys}


def _cells(row: dict, keys=CELL_COMPONENTS) -> dict:
    """The per-figure episode counts of an aggregated row, for costing/suppression.py."""
    return {key: row[f"{key}_episodes"] for key in keys if f"{key}_episodes" in row}


def _cost_row(row: dict) -> dict:
    expected, actual = row.get("expected") or ZERO, row.get("actual") or ZERO
    return {
        "cells": _cells(row),
        "episodes": row["episodes"],
        "expected": money(expected),
        "actual": money(actual),
        "variance": money(actual - expected),
        "price": money(row.get("price")),
        "usage": money(row.get("usage")),
        "los": money(row.get("los")),
        "capacity": money(row.get("capacity")),
        "system": money(row.get("system")),
        "avg_los": number(row.get("avg_los")),
        "avg_expected_los": number(row.get("avg_expected_los")),
        "over_los": row.get("over_los", 0),
    }


def _by_step_code(rows, extra: tuple[str, ...] = ()) -> dict[tuple, dict]:
    """Cost-line aggregates grouped by pathway and step id, merged by step code across versions.

    Keys are ``(pathway_id, code, name, *extra values)``; lines without a step are the
    pathway's activities off the pathway. Each version has its own step rows but an
    episode follows one version, so episode counts of one code's steps add up exactly,
    as do the sums. A code renamed in a later version takes the name that sorts last
    (by code point: PostgreSQL's ``Max`` followed the collation, which differs only in case).
    """
    rows = list(rows)
    steps = {
        pk: (code, name)
        for pk, code, name in Step.objects.filter(pk__in={r["step_id"] for r in rows} - {None}).values_list(
            "pk", "code", "name"
        )
    }
    merged: dict[tuple, dict] = {}
    names: dict[tuple, str] = {}
    for row in rows:
        code, name = steps.get(row["step_id"], (OFF_PATHWAY, "Activities off the pathway"))
        group = (row["episode_cost__pathway_id"], code, *(row[k] for k in extra))
        names[group] = max(names.get(group, name), name)
        into = merged.setdefault(group, dict.fromkeys(row, None) | {k: row[k] for k in extra})
        for key, value in row.items():
            if key in ("episode_cost__pathway_id", "step_id", *extra) or value is None:
                continue
            into[key] = value if into[key] is None else into[key] + value
    return {(group[0], group[1], names[group], *group[2:]): row for group, row in merged.items()}


COST_COLUMNS = [
    ("episodes", "Episodes", INT),
    ("expected", "Expected", MONEY),
    ("actual", "Actual", MONEY),
    ("variance", "Variance", VARIANCE),
    ("price", "Price (cash)", VARIANCE),
    ("usage", "Usage", VARIANCE),
    ("los", "Length of stay", VARIANCE),
    ("system", "System-caused", VARIANCE),
]


def cost_report(params: ReportParameters, progress: Progress | None = None) -> dict:
    """Expected against actual cost, where the difference comes from and what causes it."""
    progress = progress or (lambda pct: None)
    scope = Scope(params)

    def refreshed(done, total):
        progress(5 + int(70 * done / total))

    # Writes go to the primary; only the aggregates below read from a replica. An
    # episode whose summary is in scope is refreshed too: if it moved to another unit
    # since, its stale summary must not stay in this report.
    in_scope = Episode.objects.filter(scope.episode_q() | Q(cost_summary__in=scope.costs()))
    episode_costs_refresh(episodes=in_scope, on_batch=refreshed)
    progress(75)
    with using_reports_replica():
        return _cost_report(scope, progress)


def _cost_report(scope: Scope, progress: Progress) -> dict:
    params = scope.params
    costs = scope.costs()
    lines = scope.lines()
    per_episode = {
        **_MONEY_SUMS,
        "avg_los": Avg("los_days"),
        "avg_expected_los": Avg("expected_los_days"),
        "over_los": Count("pk", filter=Q(los_days__gt=F("expected_los_days"))),
        **_episode_counts(CELL_COMPONENTS),
    }
    head = costs.aggregate(
        episodes=Count("pk"),
        **per_episode,
        patient=Sum("patient_variance"),
        clinician=Sum("clinician_variance"),
        community=Sum("community_variance"),
        unexplained=Sum("unexplained_variance"),
        repeat=Sum("repeat_variance"),
        missing_rates=Sum("missing_rates"),
        **_episode_counts(("patient", "clinician", "community", "unexplained", "repeat")),  # system's: per_episode
    )
    active = scope.episodes().filter(status=Episode.Status.ACTIVE).count()
    n = head["episodes"]
    summary = {"label": "All costed episodes", **_cost_row(head), "active": active}
    tables = {}
    progress(80)

    # Variance by component: the waterfall from expected to actual.
    line_variance = ExpressionWrapper(
        F("actual_cost") - F("standard_cost"), output_field=DecimalField(max_digits=24, decimal_places=12)
    )
    components = lines.aggregate(
        price=Sum("price_variance"),
        usage_cash=Sum("usage_variance", filter=Q(salaried=False)),
        usage_capacity=Sum("usage_variance", filter=Q(salaried=True)),
        los_cash=Sum("los_variance", filter=Q(salaried=False)),
        los_capacity=Sum("los_variance", filter=Q(salaried=True)),
        price_episodes=Count("episode_cost", distinct=True, filter=~Q(price_variance=0)),
        usage_cash_episodes=Count("episode_cost", distinct=True, filter=~Q(usage_variance=0) & Q(salaried=False)),
        usage_capacity_episodes=Count("episode_cost", distinct=True, filter=~Q(usage_variance=0) & Q(salaried=True)),
        los_cash_episodes=Count("episode_cost", distinct=True, filter=~Q(los_variance=0) & Q(salaried=False)),
        los_capacity_episodes=Count("episode_cost", distinct=True, filter=~Q(los_variance=0) & Q(salaried=True)),
    )
    component_rows = [
        {
            "key": key,
            "label": label,
            "nature": nature,
            "amount": money(components[key]),
            "episodes": components[f"{key}_episodes"],
        }  # fmt: skip
        for key, label, nature in [
            ("price", "Price / rate", "cash"),
            ("usage_cash", "Usage / efficiency", "cash"),
            ("usage_capacity", "Usage / efficiency", "capacity consumed"),
            ("los_cash", "Length of stay", "cash"),
            ("los_capacity", "Length of stay", "capacity consumed"),
        ]
    ]
    total_variance = (head["actual"] or ZERO) - (head["expected"] or ZERO)
    tables["by_component"] = table(
        "Variance by component",
        [
            ("label", "Component", TEXT),
            ("nature", "Nature", TEXT),
            ("amount", "Variance", VARIANCE),
            ("episodes", "Episodes", INT),
        ],  # fmt: skip
        component_rows,
        total={"label": "Total variance", "nature": "", "amount": money(total_variance), "episodes": n},
        description="Positive is adverse (U: costs more than expected); negative is favourable (F). "
        "Extra minutes of salaried staff consume capacity; a dearer item is cash.",
    )
    cause_rows = [
        {
            "key": cause,
            "label": CAUSE_LABELS[cause],
            "amount": money(head[cause]),
            "episodes": head[f"{cause}_episodes"],
            # The system-caused figure is also every cost table's "System-caused" column and
            # the dashboard's tile: suppression must not hide it here only (costing/suppression.py).
            **({"shown_elsewhere": True} if cause == "system" else {}),
        }
        for cause in ("patient", "clinician", "system", "community", "unexplained", "repeat")
    ]
    tables["by_cause"] = table(
        "Variance by cause",
        [("label", "Cause", TEXT), ("amount", "Variance", VARIANCE), ("episodes", "Episodes", INT)],
        cause_rows,
        total={"label": "Total variance", "amount": money(total_variance), "episodes": n},
        description="Each cost line takes the cause of the variance record that explains it; "
        "'No cause recorded' is variance that no record explains (a longer stay or a dearer item that nobody "
        "recorded a departure for), or whose record has no reason yet. "
        "'Repeated steps' is what steps done more often than planned used: a repeat is recorded but is not "
        "a departure, so no one is asked for a reason (record an addition on the step if it was one). "
        "System-caused variance (beds, lists, supplies) is the organisation's, not the clinician's.",
    )
    progress(84)

    # What a record explains of its line (CostLine.variance_of): a timing departure (delay, early,
    # sequence) the nights it added or saved, any other record the whole line. The cause table above
    # splits the same way, so the three tables agree.
    explained_part = Case(
        When(variance__variance_type__in=sorted(TIMING_TYPES), then=F("los_variance")),
        default=line_variance,
        output_field=DecimalField(max_digits=24, decimal_places=12),
    )
    explained = lines.filter(variance__isnull=False)
    type_rows = [
        {
            "key": row["variance__variance_type"],
            "label": TYPE_LABELS.get(row["variance__variance_type"], ""),
            "amount": money(row["amount"]),
            "episodes": row["episodes"],
        }  # fmt: skip
        for row in explained.values("variance__variance_type")
        .annotate(amount=Sum(explained_part), episodes=Count("episode_cost", distinct=True))
        .order_by()
    ]
    type_rows.sort(key=lambda r: (-Decimal(r["amount"]), r["label"]))
    tables["by_type"] = table(
        "Variance cost by type of departure",
        [("label", "Type", TEXT), ("amount", "Variance", VARIANCE), ("episodes", "Episodes", INT)],
        type_rows,
    )
    reason_rows = [
        {
            "key": row["variance__reason__code"] or "",
            "label": row["display"] or "No reason yet (unexplained)",
            "amount": money(row["amount"]),
            "episodes": row["episodes"],
        }  # fmt: skip
        for row in explained.values("variance__reason__code")
        .annotate(
            amount=Sum(explained_part),
            episodes=Count("episode_cost", distinct=True),
            display=Max("variance__reason__display"),
        )
        .order_by()
    ]
    reason_rows.sort(key=lambda r: (-Decimal(r["amount"]), r["label"]))
    tables["by_reason"] = table(
        "Variance cost by reason",
        [("label", "Reason", TEXT), ("amount", "Variance", VARIANCE), ("episodes", "Episodes", INT)],
        reason_rows,
    )
    progress(87)

    # Expected against actual per pathway, month and unit.
    pathway_names = {p.pk: p for p in Pathway.objects.filter(pk__in=costs.values("pathway_id"))}
    pathway_rows = []
    for row in costs.values("pathway_id").annotate(episodes=Count("pk"), **per_episode).order_by():
        pathway = pathway_names[row["pathway_id"]]
        pathway_rows.append({"key": pathway.code, "label": f"{pathway.code} {pathway.name}", **_cost_row(row)})
    pathway_rows.sort(key=lambda r: r["key"])
    total = {"label": "All", **_cost_row(head)}
    tables["by_pathway"] = table(
        "Expected and actual cost by pathway", [("label", "Pathway", TEXT), *COST_COLUMNS], pathway_rows,
        total=total, partition=True, link="pathway",
    )  # fmt: skip
    month_rows = [
        {"key": _month_label(row["month"]), "label": _month_label(row["month"]), **_cost_row(row)}
        for row in costs.values("month").annotate(episodes=Count("pk"), **per_episode).order_by("month")
    ]
    tables["by_month"] = table(
        "Expected and actual cost by month", [("label", "Month started", TEXT), *COST_COLUMNS], month_rows,
        total=total, partition=True,
    )  # fmt: skip
    unit_rows = []
    for row in costs.values("org_unit_id").annotate(episodes=Count("pk"), **per_episode).order_by():
        unit = scope.units[row["org_unit_id"]]
        unit_rows.append({"key": unit.code, "label": unit.name, "org_unit_id": unit.pk, **_cost_row(row)})
    unit_rows.sort(key=lambda r: r["label"])
    tables["by_unit"] = table(
        "Expected and actual cost by organisational unit", [("label", "Unit", TEXT), *COST_COLUMNS], unit_rows,
        total=total, partition=True,
    )  # fmt: skip
    progress(90)

    # Length of stay against expected.
    los_rows = [
        {
            "key": r["key"],
            "label": r["label"],
            "episodes": r["episodes"],
            "avg_los": r["avg_los"],
            "avg_expected_los": r["avg_expected_los"],
            "over_los": r["over_los"],
            "los": r["los"],
            # How many episodes the length-of-stay variance comes from, as in "by pathway": the
            # two tables show one figure, which suppression hides in both or in neither.
            "cells": {"los": r["cells"]["los"]},
        }
        for r in pathway_rows
    ]
    tables["los"] = table(
        "Length of stay against expected",
        [
            ("label", "Pathway", TEXT),
            ("episodes", "Episodes", INT),
            ("avg_los", "Average stay (days)", NUMBER),
            ("avg_expected_los", "Expected stay (days)", NUMBER),
            ("over_los", "Stayed longer than expected", INT),
            ("los", "Length-of-stay variance", VARIANCE),
        ],
        los_rows,
        total={
            "label": "All",
            "episodes": n,
            "avg_los": summary["avg_los"],
            "avg_expected_los": summary["avg_expected_los"],
            "over_los": head["over_los"],
            "los": summary["los"],
            "cells": {"los": summary["cells"]["los"]},
        },  # fmt: skip
        partition=True,
    )

    # Top cost drivers and the steps of each pathway (drill-down). Lines are grouped by step id
    # (a hash aggregate over integers, no join to the steps) and merged by step code here.
    step_rows = []
    # By unit as well, added up here (an episode is in one unit, so counts add up exactly),
    # for the step's drill-down.
    step_units: dict[str, list[dict]] = defaultdict(list)
    by_step: dict[tuple, dict] = {}
    for (pathway_id, code, _name, unit_id), row in _by_step_code(
        lines.values("episode_cost__pathway_id", "step_id", "episode_cost__org_unit_id")
        .annotate(
            episodes=Count("episode_cost", distinct=True),
            expected=Sum("standard_cost"),
            actual=Sum("actual_cost"),
            price=Sum("price_variance"),
            usage=Sum("usage_variance"),
            los=Sum("los_variance"),
            **_episode_counts(STEP_CELLS, over="episode_cost"),
        )
        .order_by(),
        extra=("episode_cost__org_unit_id",),
    ).items():
        if code != OFF_PATHWAY:
            step_units[f"{pathway_names[pathway_id].code}/{code}"].append(
                {
                    "org_unit_id": unit_id,
                    "episodes": row["episodes"],
                    "actual": money(row["actual"]),
                    "variance": money((row["actual"] or ZERO) - (row["expected"] or ZERO)),
                }
            )
        into = by_step.setdefault((pathway_id, code), dict.fromkeys(row, None))
        for key, value in row.items():
            if key == "episode_cost__org_unit_id" or value is None:
                continue
            into[key] = value if into.get(key) is None else into[key] + value
        into["name"] = max(into.get("name", ""), _name)
    for (pathway_id, code), row in by_step.items():
        name = row["name"]
        pathway = pathway_names[pathway_id].code
        step_rows.append(
            {
                "key": f"{pathway}/{code}",
                "pathway": pathway,
                "group": pathway,  # the steps add up to the pathway's row
                "label": f"{pathway} · {name}",
                "episodes": row["episodes"],
                "expected": money(row["expected"]),
                "actual": money(row["actual"]),
                "variance": money((row["actual"] or ZERO) - (row["expected"] or ZERO)),
                "price": money(row["price"]),
                "usage": money(row["usage"]),
                "los": money(row["los"]),
                "cells": _cells(row, STEP_CELLS),
            }
        )
    step_rows.sort(key=lambda r: (-Decimal(r["variance"]), r["label"]))
    tables["by_step"] = table(
        "Cost by step",
        # A step's lines are not split by cause: the cost columns but the system-caused one.
        [("label", "Step", TEXT), *(c for c in COST_COLUMNS if c[0] != "system")],
        step_rows,
        link="step",
    )
    drivers = _by_step_code(
        lines.values("episode_cost__pathway_id", "step_id", "resource_id")
        .annotate(
            # The episodes a driver's variance comes from: those whose line cost other than planned
            # (not every episode with the line), which is what small-cell suppression must count.
            episodes=Count("episode_cost", distinct=True, filter=~Q(actual_cost=F("standard_cost"))),
            actual=Sum("actual_cost"),
            variance=Sum(line_variance),
        )
        .order_by(),
        extra=("resource_id",),
    )
    driver_rows = sorted(drivers.items(), key=lambda item: (-(item[1]["variance"] or ZERO), item[0]))[:10]
    resources = {row["resource_id"] for _, row in driver_rows}
    names = dict(Resource.objects.filter(pk__in=list(resources)).values_list("pk", "name"))
    tables["drivers"] = table(
        "Top cost drivers",
        [
            ("label", "Step", TEXT),
            ("resource", "Resource", TEXT),
            ("episodes", "Episodes off plan", INT),
            ("actual", "Actual cost", MONEY),
            ("variance", "Variance", VARIANCE),
        ],  # fmt: skip
        [
            {
                "key": f"{pathway_names[pathway_id].code}/{code}",
                "label": f"{pathway_names[pathway_id].code} · {name}",
                # A step's drivers add up to (part of) its row in "Cost by step": protected together.
                "group": f"{pathway_names[pathway_id].code}/{code}",
                "resource": names.get(row["resource_id"], ""),
                "episodes": row["episodes"],
                "actual": money(row["actual"]),
                "variance": money(row["variance"]),
                "cells": {"variance": row["episodes"]},
            }
            for (pathway_id, code, name, _), row in driver_rows
        ],
        description="The steps and resources whose cost exceeded the plan the most; "
        "episodes off plan are those whose cost on the line differed from the plan.",
        link="step",
    )
    progress(94)

    # Outcome linkage: episodes with and without each type of departure.
    types = list(
        scope.variances().filter(episode__status__in=[Episode.Status.COMPLETED, Episode.Status.EXITED])
        .values_list("variance_type", flat=True).distinct().order_by("variance_type")
    )  # fmt: skip
    outcome_rows = []
    if types:
        # Each episode's current variances counted by type in one join, then the episodes
        # counted: an EXISTS per type would be evaluated once for every aggregate naming it
        # (6 s instead of 0.5 s at 100,000 episodes; bench/reports.py).
        live = ~Q(episode__variances__status=Variance.Status.WITHDRAWN)
        flagged = costs.annotate(
            **{
                f"n_{t}": Count("episode__variances", filter=live & Q(episode__variances__variance_type=t))
                for t in types
            }
        )
        aggregates = {}
        for t in types:
            for side, present in (("with", True), ("without", False)):
                q = Q(**{f"n_{t}__gt": 0}) if present else Q(**{f"n_{t}": 0})
                aggregates[f"{t}_{side}_n"] = Count("pk", filter=q)
                aggregates[f"{t}_{side}_los"] = Avg("los_days", filter=q)
                aggregates[f"{t}_{side}_cost"] = Avg("actual", filter=q)
                aggregates[f"{t}_{side}_readmitted"] = Count("pk", filter=q & Q(readmitted_30d=True))
                aggregates[f"{t}_{side}_known"] = Count("pk", filter=q & Q(readmitted_30d__isnull=False))
        found = flagged.aggregate(**aggregates)
        for t in types:
            for side, label in (("with", "with"), ("without", "without")):
                k = f"{t}_{side}"
                outcome_rows.append(
                    {
                        "key": f"{t}/{side}",
                        "group": t,  # with + without = all episodes: suppressed together
                        "label": f"Episodes {label} {variance_type_phrase(t)}",
                        "episodes": found[f"{k}_n"],
                        "avg_los": number(found[f"{k}_los"]),
                        "readmission_share": share(found[f"{k}_readmitted"], found[f"{k}_known"]),
                        "avg_cost": money(Decimal(str(found[f"{k}_cost"]))) if found[f"{k}_cost"] is not None else None,
                    }
                )
    tables["outcomes"] = table(
        "Outcomes with and without each departure",
        [
            ("label", "Episode group", TEXT),
            ("episodes", "Episodes", INT),
            ("avg_los", "Average stay (days)", NUMBER),
            ("readmission_share", "Readmitted within 30 days", SHARE),
            ("avg_cost", "Average actual cost", MONEY),
        ],  # fmt: skip
        outcome_rows,
        description="Length of stay, readmission and cost of closed episodes that had a departure of each type, "
        "beside those that did not. An association, not a cause.",
    )

    # Named clinicians (shown only as the privacy rules allow).
    clinician_rows = list(
        costs.values("responsible_clinician_id", "org_unit_id")
        .annotate(episodes=Count("pk"), **per_episode, clinician=Sum("clinician_variance"))
        .order_by()
    )
    people = _user_names(r["responsible_clinician_id"] for r in clinician_rows)
    rows = []
    for row in clinician_rows:
        who, unit_id = row["responsible_clinician_id"], row["org_unit_id"]
        figures = _cost_row(row)
        # System-caused variance is the organisation's (DOMAIN.md): left out of the clinician's
        # variance and shown apart. Price, usage, length of stay and capacity include it (lines are
        # not split by cause per clinician), so a clinician's row does not carry them.
        for key in ("price", "usage", "los", "capacity"):
            figures.pop(key)
            figures["cells"].pop(key, None)
        expected, actual, system = (row[k] or ZERO for k in ("expected", "actual", "system"))
        figures["variance"] = money(actual - expected - system)
        rows.append(
            {
                "key": f"{who or 0}/{scope.units[unit_id].code}",
                "label": people.get(who, "No responsible clinician"),
                "unit": scope.units[unit_id].name,
                "clinician_id": who,
                "org_unit_id": unit_id,
                **figures,
                "clinician": money(row["clinician"]),
            }
        )
    rows.sort(key=lambda r: (r["label"], r["unit"]))
    tables["by_clinician"] = table(
        "Clinicians",
        [
            ("label", "Clinician", TEXT),
            ("unit", "Unit", TEXT),
            *COST_COLUMNS[:3],
            ("variance", "Variance less system-caused", VARIANCE),
            ("clinician", "Clinician-caused", VARIANCE),
            ("system", "System-caused (the organisation's)", VARIANCE),
        ],  # fmt: skip
        rows,
        individual=True,
        description="A clinician's variance leaves out system-caused variance (beds, lists, supplies): it is the "
        "organisation's, shown apart in the last column and never charged to the clinician. Actual cost is what "
        "was spent, system-caused cost included. Unit, pathway and trust tables show whole figures.",
    )
    tables["by_clinician"][SYSTEM_APART] = True
    progress(97)

    result = _meta(ReportRun.Kind.COST, scope)
    result["summary"] = summary
    result["tables"] = tables
    result[STEP_UNITS] = dict(step_units)
    result["notes"] = []
    if active:
        result["notes"].append(
            f"{active} active episode{pluralize(active)} in scope {pluralize(active, 'is,are')} costed when "
            f"{pluralize(active, 'it closes,they close')}."
        )
    if head["missing_rates"]:
        missing = head["missing_rates"]
        result["notes"].append(
            f"{missing} resource line{pluralize(missing)} had no rate in force on the date and "
            f"{pluralize(missing, 'was,were')} costed at zero."
        )
    fy = params.whole_financial_year
    if fy is not None:
        analysis = period_analysis(financial_year=fy, pathway_codes=list(params.pathways) or None, episodes=costs)
        if analysis.pathways:
            result["period"] = {
                "financial_year": financial_year_label(fy),
                "budget_episodes": analysis.budget_episodes,
                "actual_episodes": analysis.actual_episodes,
                "lines": [[key, label, money(amount)] for key, label, amount in analysis.lines()],
                "volume_variance": money(analysis.volume_variance),
            }
            tables["period"] = table(
                f"Budget against actual, FY {financial_year_label(fy)}",
                # Budgets and actual in one column, the variances between them in another, signed
                # and marked U/F as in every other table (a CSV keeps the sign).
                [("label", "Line", TEXT), ("amount", "Amount", MONEY), ("variance", "Variance", VARIANCE)],
                [
                    {
                        "key": key,
                        "label": label,
                        ("amount" if key in PERIOD_TOTALS else "variance"): money(amount),
                        "episodes": analysis.actual_episodes,
                    }
                    for key, label, amount in analysis.lines()
                ],  # fmt: skip
                description="Budgets are whole-year episode volumes per pathway. Volume variance splits into "
                "quantity and case mix; the flexible-budget variance into rate and efficiency.",
            )
    return result


def compute(kind: str, params: ReportParameters, progress: Progress | None = None) -> dict:
    if kind == ReportRun.Kind.VARIANCE:
        return variance_report(params, progress)
    if kind == ReportRun.Kind.COST:
        return cost_report(params, progress)
    raise ValueError(f"unknown report kind {kind!r}")
