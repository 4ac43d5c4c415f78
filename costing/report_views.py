"""Dashboards and report pages over stored ``ReportRun`` results.

The manager dashboard (cost lens) and the clinician dashboard (clinical lens) are
one page showing the same stored results of the latest variance and cost runs of
a unit, in a different order and emphasis; a toggle switches lens. What a person
sees of a result always goes through ``suppression.result_for``: named figures
only for their own (clinician) or their team (lead), small cells hidden for
managers and finance, on screen and in exports alike.

Every view serves a full page, or its fragment to HTMX ("Run now" and the
progress bar that polls while a run computes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, DecimalField, Exists, ExpressionWrapper, F, OuterRef, Prefetch, Q, Subquery, Sum
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import OrgUnit
from accounts.permissions import ALL_ROLES, EPISODE_ROLES, any_member, unit_ids_for, units_for
from variances.models import Variance

from . import charts
from .exports import result_workbook, table_csv, table_workbook
from .models import EpisodeCostLine, ReportRun
from .money import DIRECTION_CSS, MONEY_KINDS, column_header, direction_of, display, priced, with_direction
from .rates import costing_changed_since
from .report_forms import ReportRequestForm
from .reports import OFF_PATHWAY, STEP_UNITS, ReportParameters, Scope, table
from .services import report_run_request
from .suppression import SUPPRESSED, Audience, audience_for, result_for, suppress_table

KINDS = (ReportRun.Kind.COST, ReportRun.Kind.VARIANCE)
LENSES = ("cost", "clinical")
LIVE = (ReportRun.Status.QUEUED, ReportRun.Status.RUNNING)

# Which tables each section shows, by lens: money first for managers, reasons,
# timing and outcomes first for clinicians. The full report page shows them all.
LENS_TABLES = {
    ("cost", "cost"): ["by_cause", "by_pathway", "drivers", "by_unit", "los", "outcomes", "period", "by_clinician"],
    ("cost", "clinical"): ["by_reason", "by_type", "outcomes", "by_clinician"],
    ("variance", "clinical"): [
        "adherence", "by_step", "documentation_time", "revision_signals", "positive", "by_type", "by_cause",
        "by_pathway", "by_unit", "by_clinician",
    ],
    ("variance", "cost"): ["adherence", "revision_signals", "by_pathway"],
}  # fmt: skip
SECTION_TITLES = {"cost": "Cost: expected against actual", "variance": "Departures from the pathways"}
WATERFALL_LABELS = {
    "price": "Price",
    "usage_cash": "Usage, cash",
    "usage_capacity": "Usage, capacity",
    "los_cash": "Stay, cash",
    "los_capacity": "Stay, capacity",
}


# --- access ---------------------------------------------------------------------------------------


def _scope_unit_ids(user) -> list[int]:
    return unit_ids_for(user, *ALL_ROLES)


def _run_or_404(request, pk: int) -> ReportRun:
    """A run on a unit within the user's scope; anything else does not exist for them."""
    run = get_object_or_404(ReportRun.objects.select_related("org_unit", "requested_by"), pk=pk)
    if run.org_unit_id not in _scope_unit_ids(request.user):
        raise Http404("No such report.")
    return run


def _home_unit(user) -> OrgUnit:
    """The widest unit the user holds a role in (a manager's division, a clinician's specialty)."""
    return units_for(user, *ALL_ROLES).order_by("path").first()


def _chosen_unit(request) -> OrgUnit:
    code = request.GET.get("unit") or request.POST.get("unit")
    if code:
        unit = OrgUnit.objects.filter(code=code, pk__in=_scope_unit_ids(request.user)).first()
        if unit is None:
            raise Http404("No such unit in your scope.")
        return unit
    return _home_unit(request.user)


# --- shaping tables for display -------------------------------------------------------------------------


def _format(value, kind: str) -> tuple[str, str]:
    """(text, css class) of one cell."""
    if value is None or value == "":
        return "—", "muted"
    if value == SUPPRESSED:
        return SUPPRESSED, "suppressed"
    if kind == "money":
        return display(Decimal(str(value))), ""
    if kind == "variance":
        amount = Decimal(str(value))
        return with_direction(amount), DIRECTION_CSS[direction_of(amount)]
    if kind in ("share", "cumulative"):
        return f"{Decimal(str(value)) * 100:.1f}%", ""
    if kind == "int":
        return f"{value:,}", ""
    return str(value), ""


@dataclass
class DisplayTable:
    key: str
    title: str
    description: str
    headers: list[dict]
    rows: list[dict]
    total: list[dict] | None
    suppressed: bool
    csv_url: str
    xlsx_url: str
    empty: bool = False

    @property
    def dom_id(self) -> str:
        return f"table-{self.kind}-{self.key}"

    kind: str = ""
    # What the download links fetch, when not this very table (a drill-down row of it).
    export_label: str = ""

    @property
    def download_label(self) -> str:
        """The title as it reads after "Download": its capital dropped, but not an acronym's (FY, ED)."""
        if self.export_label:
            return self.export_label
        title = self.title
        return title[:1].lower() + title[1:] if title[1:2].islower() else title


def _drill_url(run: ReportRun, link: str, key: str) -> str:
    if link == "pathway" and key:
        return reverse("costing:drill_pathway", args=[run.pk, key])
    if link == "step" and key and "/" in key:
        pathway, step = key.split("/", 1)
        if step != OFF_PATHWAY:
            return reverse("costing:drill_step", args=[run.pk, pathway, step])
    return ""


def display_table(run: ReportRun, key: str, data: dict, *, title: str | None = None) -> DisplayTable:
    columns = data["columns"]
    rows = []
    for row in data["rows"]:
        cells = []
        for column in columns:
            text, css = _format(row.get(column["key"]), column["kind"])
            numeric = column["kind"] not in ("text",)
            cells.append({"text": text, "css": css, "numeric": numeric})
        link = "" if row.get("suppressed") else _drill_url(run, data.get("link", ""), row.get("key", ""))
        rows.append({"cells": cells, "link": link, "suppressed": row.get("suppressed", False)})
    total = None
    if data.get("total"):
        total = [
            dict(zip(("text", "css"), _format(data["total"].get(c["key"]), c["kind"]), strict=True))
            | {"numeric": c["kind"] != "text"}
            for c in columns
        ]
    return DisplayTable(
        key=key,
        title=title or data["title"],
        description=data.get("description", ""),
        headers=[{"label": column_header(c["label"], c["kind"]), "numeric": c["kind"] != "text"} for c in columns],
        rows=rows,
        total=total,
        suppressed=data.get("suppressed", False),
        csv_url=reverse("costing:report_export_table", args=[run.pk, key, "csv"]),
        xlsx_url=reverse("costing:report_export_table", args=[run.pk, key, "xlsx"]),
        empty=not rows,
        kind=run.kind,
    )


def _individual_title(data: dict, audience: Audience) -> str:
    if data["rows"] and all(row.get("clinician_id") == audience.user_id for row in data["rows"]):
        return "Your figures"
    return "Your team" if audience.team_unit_ids else data["title"]


def _tables(run: ReportRun, result: dict, keys: list[str], audience: Audience) -> list[DisplayTable]:
    out = []
    for key in keys:
        data = result["tables"].get(key)
        if data is None:
            continue
        title = _individual_title(data, audience) if data.get("individual") else None
        out.append(display_table(run, key, data, title=title))
    return out


# --- charts ------------------------------------------------------------------------------------------------


HIDDEN_NOTE = "Gaps and * are figures hidden because they cover 1 to 7 episodes."


def _chart(kind: str, title: str, data: dict, fallback: DisplayTable, summary: str) -> dict:
    note = HIDDEN_NOTE if fallback.suppressed else ""
    return {"kind": kind, "title": title, "data": data, "table": fallback, "summary": summary, "note": note}


def _numbered(charts_: list[dict], prefix: str) -> list[dict]:
    for i, chart in enumerate(charts_, start=1):
        chart["id"] = f"{prefix}-chart-{i}"
    return charts_


def _cost_charts(run: ReportRun, result: dict, lens: str) -> list[dict]:
    tables, summary = result["tables"], result["summary"]
    out = []
    components = tables.get("by_component")
    if components:
        steps = [(WATERFALL_LABELS.get(r["key"], r["label"]), r["amount"]) for r in components["rows"]]
        data = charts.waterfall_chart(("Expected", summary.get("expected")), steps, ("Actual", summary.get("actual")))
        if not data["empty"]:
            out.append(
                _chart(
                    "waterfall",
                    "From expected to actual cost",
                    data,
                    display_table(run, "by_component", components),
                    "Bars rise for adverse variance (costs more than planned) and fall for favourable.",
                )
            )
    months = tables.get("by_month")
    if months and lens == "cost" and len(months["rows"]) > 1:
        labels = [r["label"] for r in months["rows"]]
        data = charts.line_chart(
            labels,
            [("Expected", [r["expected"] for r in months["rows"]]), ("Actual", [r["actual"] for r in months["rows"]])],
        )
        out.append(
            _chart(
                "line",
                "Expected and actual cost by month",
                data,
                display_table(run, "by_month", months),
                "One line for expected and one for actual cost, by the month episodes started.",
            )
        )
    return out


def _variance_charts(run: ReportRun, result: dict, lens: str) -> list[dict]:
    tables = result["tables"]
    out = []
    reasons = tables.get("by_reason")
    if reasons and reasons["rows"]:
        data = charts.pareto_chart([(r["label"], r["variances"], r.get("cumulative")) for r in reasons["rows"]])
        out.append(
            _chart(
                "pareto",
                "Why departures happen (Pareto)",
                data,
                display_table(run, "by_reason", reasons),
                "Variances per reason, most frequent first, with the running share of all variances.",
            )
        )
    trend = tables.get("trend")
    if trend and lens == "clinical" and len(trend["rows"]) > 1:
        data = charts.line_chart(
            [r["label"] for r in trend["rows"]],
            [("Share of episodes with a variance", [r["with_variance_share"] for r in trend["rows"]])],
            money=False,
        )
        out.append(
            _chart(
                "line",
                "Episodes with a departure, month by month",
                data,
                display_table(run, "trend", trend),
                "The share of episodes started each month that departed from the pathway.",
            )
        )
    return out


# --- summary cards --------------------------------------------------------------------------------------------


def _card(label: str, value, kind: str, note: str = "") -> dict:
    text, css = _format(value, kind)
    if kind in MONEY_KINDS and text[:1].isdigit():
        text = priced(text)  # a card stands alone: its figure says its currency
    return {"label": label, "text": text, "css": css, "note": note}


def _cards(kind: str, result: dict) -> list[dict]:
    s = result["summary"]
    if kind == ReportRun.Kind.COST:
        system = next((r for r in result["tables"].get("by_cause", {}).get("rows", []) if r["key"] == "system"), {})
        return [
            _card("Episodes costed", s.get("episodes"), "int"),
            _card("Expected cost", s.get("expected"), "money"),
            _card("Actual cost", s.get("actual"), "money"),
            _card("Variance", s.get("variance"), "variance", "U adverse, F favourable"),
            _card(
                "Cost of system-caused variance",
                system.get("amount"),
                "variance",
                "The organisation's, not the clinician's",
            ),
            _card("Salaried capacity consumed", s.get("capacity"), "variance", "Staff time, not cash"),
        ]
    return [
        _card("Episodes", s.get("episodes"), "int"),
        _card("With a departure", s.get("with_variance_share"), "share"),
        _card("Departures per episode", s.get("variances_per_episode"), "number"),
        _card("Waiting for a reason", s.get("unexplained"), "int"),
        _card("Hours from detection to reason (mean)", s.get("documentation_hours"), "number"),
        _card("Positive departures", s.get("positive"), "int"),
    ]


# --- dashboard -------------------------------------------------------------------------------------------------


@dataclass
class Section:
    kind: str
    title: str
    unit: OrgUnit
    lens: str
    run: ReportRun | None = None
    live: ReportRun | None = None
    result: dict | None = None
    cards: list = field(default_factory=list)
    charts: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    status: dict | None = None
    costing_changed: object = None  # a CostRate or Resource changed since the run (rates.costing_changed_since)


def _default_runs(unit: OrgUnit, kind: str) -> tuple[ReportRun | None, ReportRun | None]:
    """The latest finished run of the unit's default report (all pathways), and a live one."""
    recent = list(
        ReportRun.objects.filter(org_unit=unit, kind=kind)
        .filter(Q(status=ReportRun.Status.SUCCEEDED) | Q(status__in=LIVE))
        .select_related("org_unit", "requested_by")
        .order_by("-requested_at", "-id")[:20]
    )
    defaults = [r for r in recent if not r.parameters.get("pathways")]
    done = max(
        (r for r in defaults if r.status == ReportRun.Status.SUCCEEDED),
        key=lambda r: r.finished_at,
        default=None,
    )
    live = next((r for r in defaults if r.status in LIVE), None)
    return done, live


def _section(kind: str, unit: OrgUnit, audience: Audience, lens: str) -> Section:
    section = Section(kind=kind, title=SECTION_TITLES[kind], unit=unit, lens=lens)
    section.run, section.live = _default_runs(unit, kind)
    if section.live is not None:
        section.status = status_context(section.live, section=kind, lens=lens)
    if section.run is None:
        return section
    section.result = result_for(section.run.result, audience)
    if kind == ReportRun.Kind.COST:
        section.costing_changed = costing_changed_since(section.run.started_at)
    section.cards = _cards(kind, section.result)
    make_charts = _cost_charts if kind == ReportRun.Kind.COST else _variance_charts
    section.charts = _numbered(make_charts(section.run, section.result, lens), kind)
    section.tables = _tables(section.run, section.result, LENS_TABLES[(kind, lens)], audience)
    return section


@require_GET
@any_member
def dashboard(request):
    unit = _chosen_unit(request)
    if unit is None:
        raise Http404("You hold no role in any unit.")
    audience = audience_for(request.user, unit.pk)
    lens = request.GET.get("lens")
    if lens not in LENSES:
        lens = audience.lens_default
    only = request.GET.get("section")
    if request.htmx and only in KINDS:
        section = _section(only, unit, audience, lens)
        return render(request, "costing/partials/dashboard_section.html", {"section": section, "audience": audience})
    order = ["cost", "variance"] if lens == "cost" else ["variance", "cost"]
    sections = [_section(kind, unit, audience, lens) for kind in order]
    units = units_for(request.user, *ALL_ROLES).order_by("path")
    return render(
        request,
        "costing/dashboard.html",
        {"sections": sections, "unit": unit, "units": units, "lens": lens, "audience": audience},
    )


# --- running reports ------------------------------------------------------------------------------------------


def status_context(run: ReportRun, *, section: str = "", lens: str = "") -> dict:
    """What the progress partial needs. In a dashboard section it reloads the section when done."""
    if section not in KINDS or lens not in LENSES:
        section = lens = ""
    poll = reverse("costing:report_status", args=[run.pk])
    reload_url = ""
    if section:
        poll += "?" + urlencode({"section": section, "lens": lens})
        reload_url = (
            reverse("costing:dashboard")
            + "?"
            + urlencode({"unit": run.org_unit.code, "lens": lens, "section": section})
        )
    return {
        "run": run,
        "live": run.status in LIVE,
        "poll_url": poll,
        "reload_url": reload_url,
        "status_id": section or "run",
    }


def _request_status(run: ReportRun, request) -> dict:
    data = request.POST if request.method == "POST" else request.GET
    return status_context(run, section=data.get("section", ""), lens=data.get("lens", ""))


@require_http_methods(["GET", "POST"])
@any_member
def report_request(request):
    """Run a report now (or join the identical one already running).

    A form with errors is shown at this address; reloading it, or opening it
    from history, is a GET: that goes back to the reports page, not a bare 405.
    """
    if request.method == "GET":
        return redirect("costing:report_list")
    data = request.POST.copy()
    if not data.get("period"):
        data["period"] = "12m"
    form = ReportRequestForm(data, user=request.user)
    if not form.is_valid():
        if request.htmx:
            context = {
                "form": form,
                "status_id": request.POST.get("section") if request.POST.get("section") in KINDS else "run",
            }
            return render(request, "costing/partials/run_errors.html", context, status=422)
        return _report_list(request, form=form, status=422)
    run, joined = report_run_request(kind=form.cleaned_data["kind"], parameters=form.parameters, actor=request.user)
    run.refresh_from_db()  # in-process (no broker) the run has already finished
    if request.htmx:
        return render(request, "costing/partials/run_status.html", _request_status(run, request) | {"joined": joined})
    if joined:
        messages.info(request, "The same report was already being computed: you will see its figures.")
    else:
        messages.success(request, f"{run.get_kind_display()} requested.")
    if request.POST.get("section"):
        return redirect(
            reverse("costing:dashboard")
            + "?"
            + urlencode({"unit": run.org_unit.code, "lens": request.POST.get("lens", "")})
        )
    return redirect("costing:report_detail", pk=run.pk)


@require_GET
@any_member
def report_status(request, pk: int):
    """The progress bar (HTMX polls it every second while the run computes)."""
    run = _run_or_404(request, pk)
    context = _request_status(run, request)
    response = render(request, "costing/partials/run_status.html", context)
    if request.htmx and not context["live"] and not context["reload_url"]:
        response["HX-Refresh"] = "true"  # the report page: show the finished figures
    return response


def _report_list(request, *, form=None, status=200):
    runs = ReportRun.objects.filter(org_unit_id__in=_scope_unit_ids(request.user)).select_related(
        "org_unit", "requested_by"
    )
    page = Paginator(runs.order_by("-requested_at", "-id"), 25).get_page(request.GET.get("page"))
    if form is None:
        home = _home_unit(request.user)
        form = ReportRequestForm(
            user=request.user, initial={"org_unit": home.code if home else "", "period": "12m", "kind": "cost"}
        )
    return render(request, "costing/reports.html", {"page": page, "form": form}, status=status)


@require_GET
@any_member
def report_list(request):
    return _report_list(request)


@require_GET
@any_member
def report_detail(request, pk: int):
    run = _run_or_404(request, pk)
    audience = audience_for(request.user, run.org_unit_id)
    result = result_for(run.result, audience)
    context = {"run": run, "audience": audience, "result": result} | status_context(run)
    if run.kind == ReportRun.Kind.COST:
        context["costing_changed"] = costing_changed_since(run.started_at)
    if result is not None:
        make_charts = _cost_charts if run.kind == ReportRun.Kind.COST else _variance_charts
        lens = "cost" if run.kind == ReportRun.Kind.COST else "clinical"
        context["charts"] = _numbered(make_charts(run, result, lens), run.kind)
        context["cards"] = _cards(run.kind, result)
        drawn = {chart["table"].key for chart in context["charts"]}
        context["tables"] = _tables(run, result, [k for k in result["tables"] if k not in drawn], audience)
    return render(request, "costing/report_detail.html", context)


# --- exports ------------------------------------------------------------------------------------------------------


def _visible_result(request, run: ReportRun) -> dict:
    if run.result is None:
        raise Http404("This report has no figures yet.")
    return result_for(run.result, audience_for(request.user, run.org_unit_id))


def _filename(run: ReportRun, suffix: str) -> str:
    return f"commonpath-{run.kind}-report-{run.pk}-{run.org_unit.code.lower()}{suffix}"


@require_GET
@any_member
def report_export_workbook(request, pk: int):
    run = _run_or_404(request, pk)
    result = _visible_result(request, run)
    content = result_workbook(result, title=f"{run.get_kind_display()} #{run.pk}")
    response = HttpResponse(content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="{_filename(run, ".xlsx")}"'
    return response


@require_GET
@any_member
def report_export_table(request, pk: int, table_key: str, fmt: str):
    run = _run_or_404(request, pk)
    data = _visible_result(request, run)["tables"].get(table_key)
    if data is None or fmt not in ("csv", "xlsx"):
        raise Http404("No such table.")
    if fmt == "csv":
        response = HttpResponse(table_csv(data), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(
            table_workbook(data, table_key),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    response["Content-Disposition"] = f'attachment; filename="{_filename(run, f"-{table_key}.{fmt}")}"'
    return response


# --- drill-down: pathway -> step -> episodes ---------------------------------------------------------------------


def _result_table(run, result, key, rows, title, *, description=""):
    """Some rows of a stored table; its downloads remain the whole table."""
    data = dict(result["tables"][key])
    whole = data["title"]
    data["rows"] = rows
    data["total"] = None
    data["title"] = title
    data["description"] = description
    shown = display_table(run, key, data)
    shown.export_label = f"the whole table ({whole.lower()})"
    return shown


@require_GET
@any_member
def drill_pathway(request, pk: int, code: str):
    run = _run_or_404(request, pk)
    result = _visible_result(request, run)
    pathway_row = next((r for r in result["tables"]["by_pathway"]["rows"] if r["key"] == code), None)
    if pathway_row is None:
        raise Http404("This pathway is not in the report.")
    steps = [r for r in result["tables"].get("by_step", {}).get("rows", []) if r.get("pathway") == code]
    context = {
        "run": run,
        "code": code,
        "pathway": _result_table(run, result, "by_pathway", [pathway_row], "The pathway"),
        "steps": _result_table(
            run, result, "by_step", steps, "Its steps", description="Choose a step to see its episodes."
        ),
    }
    return render(request, "costing/drill_pathway.html", context)


@require_GET
@any_member
def drill_step(request, pk: int, code: str, step: str):
    run = _run_or_404(request, pk)
    audience = audience_for(request.user, run.org_unit_id)
    result = result_for(run.result, audience) if run.result else None
    key = f"{code}/{step}"
    row = next(
        (r for r in (result or {}).get("tables", {}).get("by_step", {}).get("rows", []) if r["key"] == key), None
    )
    if row is None:
        raise Http404("This step is not in the report.")
    scope = Scope(ReportParameters.from_dict(run.parameters))
    context = {
        "run": run,
        "code": code,
        "step_code": step,
        "step": _result_table(run, result, "by_step", [row], "Figures for this step"),
        "step_label": row["label"],
        "audience": audience,
    }
    if audience.can_open_episodes:
        context["page"] = _step_episodes(request, run, scope, code, step)
    else:
        context["units"] = _step_units(run, scope, code, step, audience)
    return render(request, "costing/drill_step.html", context)


def _step_episodes(request, run: ReportRun, scope: Scope, code: str, step: str):
    """The episodes behind a step's figures that this clinician, lead or admin may open."""
    mine = unit_ids_for(request.user, *EPISODE_ROLES)
    episodes = scope.episodes().filter(org_unit_id__in=mine, version__pathway__code=code)
    on_step = Variance.objects.current().filter(step__code=step).select_related("reason").order_by("occurred_at", "pk")
    if run.kind == ReportRun.Kind.VARIANCE:
        episodes = episodes.filter(Exists(on_step.filter(episode_id=OuterRef("pk"))))
    else:
        lines = EpisodeCostLine.objects.filter(episode_cost_id=OuterRef("pk"), step__code=step)
        episodes = episodes.filter(Exists(lines.exclude(actual_cost=F("standard_cost")))).annotate(
            step_variance=Subquery(
                lines.values("episode_cost_id")
                .annotate(total=Sum(F("actual_cost") - F("standard_cost")))
                .values("total")[:1],
                output_field=DecimalField(max_digits=24, decimal_places=12),
            )
        )
    episodes = (
        episodes.select_related("org_unit", "responsible_clinician")
        .prefetch_related(Prefetch("variances", queryset=on_step, to_attr="step_variances"))
        .order_by("-started_at", "-pk")
    )
    page = Paginator(episodes, 25).get_page(request.GET.get("page"))
    for episode in page:
        amount = getattr(episode, "step_variance", None)
        episode.step_variance_text = _format(amount, "variance") if amount is not None else None
    return page


def _step_units(run: ReportRun, scope: Scope, code: str, step: str, audience: Audience) -> DisplayTable:
    """For managers and finance: the step by organisational unit, small cells suppressed.

    From the run itself, as the step's row above it is: counted live, the units of a run
    computed before a rate change or an import did not add up to that row. A run stored
    before runs kept their units is counted live, and the table says so.
    """
    stored = (run.result or {}).get(STEP_UNITS)
    if stored is not None:
        units = stored.get(f"{code}/{step}", [])
        # Named as they are now: a unit may have moved out of the report's tree since.
        names = dict(OrgUnit.objects.filter(pk__in=[u["org_unit_id"] for u in units]).values_list("pk", "name"))
        rows = [{"key": u["org_unit_id"], "label": names.get(u["org_unit_id"], ""), **u} for u in units]
        if run.kind == ReportRun.Kind.VARIANCE:
            columns = [("label", "Unit", "text"), ("variances", "Variances", "int"), ("episodes", "Episodes", "int")]
        else:
            columns = [("label", "Unit", "text"), ("episodes", "Episodes", "int"), ("actual", "Actual cost", "money"),
                       ("variance", "Variance", "variance")]  # fmt: skip
        total = _step_total(run, code, step, columns)
        return _unit_table(run, rows, columns, audience, title="By organisational unit", total=total)
    if run.kind == ReportRun.Kind.VARIANCE:
        rows = [
            {
                "key": r["episode__org_unit_id"],
                "label": scope.units[r["episode__org_unit_id"]].name,
                "variances": r["variances"],
                "episodes": r["episodes"],
            }  # fmt: skip
            for r in scope.variances()
            .filter(episode__version__pathway__code=code, step__code=step)
            .values("episode__org_unit_id")
            .annotate(variances=Count("pk"), episodes=Count("episode", distinct=True))
            .order_by()
        ]
        columns = [("label", "Unit", "text"), ("variances", "Variances", "int"), ("episodes", "Episodes", "int")]
    else:
        line_variance = ExpressionWrapper(
            F("actual_cost") - F("standard_cost"), output_field=DecimalField(max_digits=24, decimal_places=12)
        )
        rows = [
            {
                "key": r["episode_cost__org_unit_id"],
                "label": scope.units[r["episode_cost__org_unit_id"]].name,
                "episodes": r["episodes"],
                "actual": str(r["actual"]),
                "variance": str(r["variance"]),
            }  # fmt: skip
            for r in scope.lines()
            .filter(episode_cost__pathway__code=code, step__code=step)
            .values("episode_cost__org_unit_id")
            .annotate(
                episodes=Count("episode_cost", distinct=True), actual=Sum("actual_cost"), variance=Sum(line_variance)
            )
            .order_by()
        ]
        columns = [("label", "Unit", "text"), ("episodes", "Episodes", "int"), ("actual", "Actual cost", "money"),
                   ("variance", "Variance", "variance")]  # fmt: skip
    return _unit_table(
        run,
        rows,
        columns,
        audience,
        title="By organisational unit, counted now",
        total=_step_total(run, code, step, columns),
    )


def _step_total(run: ReportRun, code: str, step: str, columns: list) -> dict:
    """The step's row, shown above its units, as their total: what suppression must not let them give back."""
    step_row = next(r for r in run.result["tables"]["by_step"]["rows"] if r["key"] == f"{code}/{step}")
    return {key: step_row.get(key) for key, _label, _kind in columns} | {"shown_elsewhere": True}


def _unit_table(
    run: ReportRun, rows: list[dict], columns: list, audience: Audience, *, title: str, total: dict | None = None
) -> DisplayTable:
    rows.sort(key=lambda r: r["label"])
    data = table(title, columns, rows, total=total, partition=True)
    if audience.suppress:
        data = suppress_table(data)
    data["total"] = None  # the step's row, already on the page
    shown = display_table(run, "by_step", data)
    shown.csv_url = shown.xlsx_url = ""  # not one of the run's tables: its exports hold those
    return shown
