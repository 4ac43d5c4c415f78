"""Costing pages: the pathway cost panel and provenance, the episode's and the variance's
cost lens, and finance's resources, rates and budgets.

The pathway page (pathways app), the episode page and the variance page (variances
app) pull their cost panels from here as HTMX fragments, so that Python imports stay
one-way (neither app imports costing). Every view serves the fragment to HTMX and a
full page otherwise.

Reading pathway costs and rates is for every role (a doctor may ask where a number
comes from); changing resources, rates and budgets is for finance and admins. An
episode's or a variance's cost is for whoever may open that episode: its clinicians,
their lead and administrators, never managers or finance (who see units, not patients).
"""

from datetime import date

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.audit import audit_record
from accounts.models import Membership
from accounts.permissions import EPISODE_ROLES, FINANCE_ROLES, any_member, has_role, role_required
from accounts.web import form_errors
from pathways import selectors as pathway_selectors
from pathways.models import PathwayVersion, PlannedResource, Resource, Step
from pathways.services import resource_create, resource_update
from variances import selectors as variance_selectors

from .engine import ZERO, EpisodeCosting, Nature, cost_episode
from .forms import BudgetForm, CapacityCostRateForm, RateForm, RateImportForm, ResourceForm
from .imports import import_ncc, import_rates_csv
from .models import Budget, EpisodeCost, financial_year_label, financial_year_of
from .rates import capacity_cost_rate, cost_rate_set, rates_in_force
from .standard import budget_delete, budget_set, step_standard_cost, version_cost_delta, version_standard_cost

Role = Membership.Role
BUDGET_READERS = (*FINANCE_ROLES, Role.MANAGER)
PAGE_SIZE = 50


def _costing_date(request) -> date:
    """``?on=YYYY-MM-DD`` (the date whose rates apply), else today."""
    raw = request.GET.get("on", "")
    try:
        return date.fromisoformat(raw) if raw else timezone.localdate()
    except ValueError:
        return timezone.localdate()


def _version_or_404(request, pk: int) -> PathwayVersion:
    return get_object_or_404(
        pathway_selectors.visible_versions(request.user).select_related("pathway"),
        pk=pk,
    )


# --- the pathway page's cost panel (fragments) -------------------------------------------------


@any_member
def version_cost(request, pk: int):
    """Expected cost E of a version, stage by stage; per-step figures swap into the plan out of band."""
    version = _version_or_404(request, pk)
    on = _costing_date(request)
    cost = version_standard_cost(version, on=on)
    context = {
        "version": version,
        "pathway": version.pathway,
        "cost": cost,
        "on": on,
        "fy_label": financial_year_label(financial_year_of(on)),
        "oob": bool(request.htmx),
    }
    template = "costing/partials/version_cost.html" if request.htmx else "costing/version_cost.html"
    return render(request, template, context)


@any_member
def step_cost(request, pk: int):
    """Where a step's cost comes from: quantity x headcount x rate, with each rate's source and year."""
    step = get_object_or_404(Step.objects.select_related("version__pathway"), pk=pk)
    if not pathway_selectors.visible_versions(request.user).filter(pk=step.version_id).exists():
        raise Http404
    on = _costing_date(request)
    context = {
        "step": step,
        "version": step.version,
        "pathway": step.version.pathway,
        "sc": step_standard_cost(step, on=on),
        "on": on,
        "fy_label": financial_year_label(financial_year_of(on)),
    }
    template = "costing/partials/step_cost.html" if request.htmx else "costing/step_cost.html"
    return render(request, template, context)


@any_member
def version_cost_delta_view(request, old: int, new: int):
    before, after = _version_or_404(request, old), _version_or_404(request, new)
    if before.pathway_id != after.pathway_id:
        raise Http404
    on = _costing_date(request)
    context = {
        "delta": version_cost_delta(before, after, on=on),
        "pathway": before.pathway,
        "on": on,
        "fy_label": financial_year_label(financial_year_of(on)),
    }
    template = "costing/partials/cost_delta.html" if request.htmx else "costing/cost_delta.html"
    return render(request, template, context)


# --- the episode's and the variance's cost lens (fragments) -----------------------------------


def _episode_lens(episode, costing: EpisodeCosting) -> dict:
    """What the episode costs against its pathway, split as DOMAIN.md section 4 splits it.

    While the episode is active, steps not yet done and nights not yet spent would read as
    savings: only what already costs more than planned is listed, and no variance is given.
    """
    final = episode.status != episode.Status.ACTIVE
    lines = _shown(costing.decomposition(), final=final)
    capacity = [part.amount for part in lines if part.nature == Nature.CAPACITY]
    labels = dict(EpisodeCost.Cause.choices)
    return {
        "episode": episode,
        "costing": costing,
        "currency": settings.CURRENCY,
        "final": final,
        "lines": lines,
        "causes": sorted(
            ((labels[cause], amount) for cause, amount in costing.by_cause().items() if amount), key=lambda c: -c[1]
        ),
        # Steps done more often than planned whose cost no record explains: the page says why, once.
        "repeats": list(
            {p.line.step.pk: p.line.step for p in lines if p.line.repeated and p.variance is None}.values()
        ),
        # Salaried staff time, used beyond plan and not used, said apart rather than netted.
        "capacity_consumed": sum((a for a in capacity if a > 0), ZERO),
        "capacity_freed": sum((a for a in capacity if a < 0), ZERO),
    }


def _shown(parts: list, *, final: bool) -> list:
    """While an episode is active, steps not yet done and nights not yet spent would read as
    savings: only what already costs more than planned is shown."""
    return parts if final else [part for part in parts if part.amount > 0]


@role_required(*EPISODE_ROLES)
@require_GET
def episode_cost(request, pk: int):
    """The episode's cost lens: expected against actual, the variance split, and what explains each line."""
    episode = get_object_or_404(
        variance_selectors.episodes_for(request.user).select_related("version__pathway", "org_unit"), pk=pk
    )
    audit_record(action="episode.read", obj=episode, episode_ref=episode.patient_ref, detail={"via": "cost"})
    context = _episode_lens(episode, cost_episode(episode))
    template = "costing/partials/episode_cost.html" if request.htmx else "costing/episode_cost.html"
    return render(request, template, context)


@role_required(*EPISODE_ROLES)
@require_GET
def variance_cost(request, pk: int):
    """The cost lines a variance explains: the money side of one documented departure."""
    variance = get_object_or_404(
        variance_selectors.variances_for(request.user).select_related(
            "episode__version__pathway", "step", "detection__event"
        ),
        pk=pk,
    )
    episode = variance.episode
    audit_record(
        action="variance.read",
        obj=variance,
        episode_ref=episode.patient_ref,
        detail={"via": "cost", "episode": episode.pk},
    )
    final = episode.status != episode.Status.ACTIVE
    costing = cost_episode(episode)
    parts = _shown(costing.decomposition(), final=final)
    lines = [p for p in parts if p.variance is not None and p.variance.pk == variance.pk]
    event = variance.detection.event if variance.detection_id else None
    context = {
        "variance": variance,
        "episode": episode,
        "currency": settings.CURRENCY,
        "final": final,
        "lines": lines,
        "explained": sum((p.amount for p in lines), ZERO),
        # An activity detected off the pathway that was recorded without its resources.
        "uncosted": event is not None and event.activity in costing.uncosted,
    }
    template = "costing/partials/variance_cost.html" if request.htmx else "costing/variance_cost.html"
    return render(request, template, context)


# --- resources and rates --------------------------------------------------------------------------


@any_member
def resource_list(request):
    q = request.GET.get("q", "").strip()
    kind = request.GET.get("kind", "")
    resources = Resource.objects.order_by("code")
    if q:
        resources = resources.filter(Q(code__icontains=q) | Q(name__icontains=q))
    if kind in Resource.Kind.values:
        resources = resources.filter(kind=kind)
    page = Paginator(resources, PAGE_SIZE).get_page(request.GET.get("page"))
    today = timezone.localdate()
    rates = rates_in_force([r.pk for r in page.object_list], today)
    rows = [(resource, rates.get(resource.pk)) for resource in page.object_list]
    context = {
        "rows": rows,
        "page": page,
        "q": q,
        "kind": kind,
        "kinds": Resource.Kind.choices,
        "fy_label": financial_year_label(financial_year_of(today)),
        "can_edit": has_role(request.user, *FINANCE_ROLES),
    }
    template = (
        "costing/rates/partials/resource_results.html"
        if request.htmx and request.htmx.target == "results"
        else "costing/rates/resource_list.html"
    )
    return render(request, template, context)


@any_member
def resource_detail(request, code: str):
    resource = get_object_or_404(Resource, code=code)
    rates = list(resource.rates.select_related("updated_by").order_by("-financial_year"))
    today = timezone.localdate()
    in_force = rates_in_force([resource.pk], today).get(resource.pk)
    uses = (
        PlannedResource.objects.filter(resource=resource)
        .select_related("step__version__pathway")
        .filter(step__version__in=pathway_selectors.visible_versions(request.user))
        .order_by("step__version__pathway__code", "-step__version__number", "step__code")
    )
    context = {
        "resource": resource,
        "rates": rates,
        "in_force": in_force,
        "fy_label": financial_year_label(financial_year_of(today)),
        "uses": uses[:100],
        "can_edit": has_role(request.user, *FINANCE_ROLES),
    }
    return render(request, "costing/rates/resource_detail.html", context)


@role_required(*FINANCE_ROLES)
@require_http_methods(["GET", "POST"])
def resource_new(request):
    form = ResourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            resource = resource_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"{resource.code} added. Now give it a rate.")
            return redirect("costing:rate_new", code=resource.code)
    return render(request, "costing/rates/resource_form.html", {"form": form, "title": "New resource"})


@role_required(*FINANCE_ROLES)
@require_http_methods(["GET", "POST"])
def resource_edit(request, code: str):
    resource = get_object_or_404(Resource, code=code)
    initial = {f: getattr(resource, f) for f in ("name", "kind", "unit", "salaried", "description")}
    form = ResourceForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            resource_update(resource=resource, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"{resource.code} saved.")
            return redirect("costing:resource_detail", code=resource.code)
    return render(
        request,
        "costing/rates/resource_form.html",
        {"form": form, "title": f"Edit {resource.code}", "resource": resource},
    )


@role_required(*FINANCE_ROLES)
@require_http_methods(["GET", "POST"])
def rate_edit(request, code: str, financial_year: int | None = None):
    """Set the rate of a resource for a financial year (create, or replace with a reason)."""
    resource = get_object_or_404(Resource, code=code)
    existing = resource.rates.filter(financial_year=financial_year).first() if financial_year else None
    if financial_year and existing is None:
        raise Http404
    initial = {}
    if existing:
        initial = {f: getattr(existing, f) for f in ("financial_year", "rate", "price_year", "source", "includes")}
    form = RateForm(request.POST or None, initial=initial, fixed_year=financial_year)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rate, outcome = cost_rate_set(
                resource=resource,
                financial_year=data["financial_year"],
                rate=data["rate"],
                price_year=data["price_year"],
                source=data["source"],
                includes=data["includes"],
                actor=request.user,
                reason=data["reason"],
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            label = financial_year_label(rate.financial_year)
            messages.success(request, f"{resource.code} FY {label}: rate {outcome}.")
            return redirect("costing:resource_detail", code=resource.code)
    context = {"form": form, "resource": resource, "existing": existing}
    return render(request, "costing/rates/rate_form.html", context)


@role_required(*FINANCE_ROLES)
@require_http_methods(["GET", "POST"])
def ccr_calculator(request):
    """Capacity cost rate = cost of capacity supplied / (theoretical minutes x practical factor)."""
    data = request.POST if request.method == "POST" else (request.GET if "capacity_cost" in request.GET else None)
    form = CapacityCostRateForm(data, initial={"resource": request.GET.get("resource")})
    result = None
    if data is not None and form.is_valid():
        try:
            result = capacity_cost_rate(
                capacity_cost=form.cleaned_data["capacity_cost"],
                theoretical_minutes=form.cleaned_data["theoretical_minutes"],
                practical_factor=form.cleaned_data["practical_factor"],
            )
        except ValidationError as exc:
            form_errors(form, exc)
        if result is not None and request.method == "POST" and request.POST.get("action") == "save":
            resource = form.cleaned_data["resource"]
            try:
                rate, outcome = cost_rate_set(
                    resource=resource,
                    financial_year=form.cleaned_data["financial_year"],
                    ccr=result,
                    source=form.cleaned_data["source"],
                    includes=form.cleaned_data["includes"],
                    actor=request.user,
                    reason="capacity cost rate calculator",
                )
            except ValidationError as exc:
                form_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"{resource.code} FY {financial_year_label(rate.financial_year)}: {rate.rate} per minute ({outcome}).",
                )
                return redirect("costing:resource_detail", code=resource.code)
    template = "costing/rates/partials/ccr_result.html" if request.htmx else "costing/rates/ccr.html"
    return render(request, template, {"form": form, "result": result})


@role_required(*FINANCE_ROLES)
@require_http_methods(["GET", "POST"])
def rate_import(request):
    form = RateImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        data = upload.read()
        try:
            if form.cleaned_data["format"] == RateImportForm.NCC:
                result = import_ncc(
                    data=data,
                    actor=request.user,
                    financial_year=form.cleaned_data["financial_year"],
                    price_year=form.cleaned_data["price_year"],
                    filename=upload.name,
                )
            else:
                result = import_rates_csv(data=data, actor=request.user, filename=upload.name)
        except ValidationError as exc:
            form.add_error("file", exc.messages)
        else:
            return render(request, "costing/rates/import_result.html", {"result": result})
    return render(request, "costing/rates/import_form.html", {"form": form})


# --- budgets ----------------------------------------------------------------------------------------


@role_required(*BUDGET_READERS)
def budget_list(request):
    budgets = Budget.objects.select_related("pathway", "updated_by").order_by("-financial_year", "pathway__code")
    context = {"budgets": budgets, "can_edit": has_role(request.user, *FINANCE_ROLES)}
    return render(request, "costing/budgets/budget_list.html", context)


@role_required(*FINANCE_ROLES)
@require_http_methods(["GET", "POST"])
def budget_edit(request, pk: int | None = None):
    budget = get_object_or_404(Budget.objects.select_related("pathway"), pk=pk) if pk else None
    initial = (
        {"pathway": budget.pathway_id, "financial_year": budget.financial_year, "episodes": budget.episodes}
        if budget
        else {}
    )
    form = BudgetForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if budget and (data["pathway"].pk, data["financial_year"]) != (budget.pathway_id, budget.financial_year):
            form.add_error(
                None, "To budget another pathway or year, add a new budget; this one keeps its pathway and year."
            )
        else:
            try:
                saved, outcome = budget_set(
                    pathway=data["pathway"],
                    financial_year=data["financial_year"],
                    episodes=data["episodes"],
                    actor=request.user,
                )
            except ValidationError as exc:
                form_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"Budget for {saved.pathway.code} FY {financial_year_label(saved.financial_year)}: {saved.episodes} episodes ({outcome}).",
                )
                return redirect("costing:budget_list")
    return render(request, "costing/budgets/budget_form.html", {"form": form, "budget": budget})


@role_required(*FINANCE_ROLES)
@require_POST
def budget_remove(request, pk: int):
    budget = get_object_or_404(Budget.objects.select_related("pathway"), pk=pk)
    label = f"{budget.pathway.code} FY {financial_year_label(budget.financial_year)}"
    budget_delete(budget=budget, actor=request.user)
    messages.success(request, f"Budget for {label} removed.")
    return redirect("costing:budget_list")
