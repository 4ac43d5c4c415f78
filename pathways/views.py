"""Pathway pages: the catalogue, a version's plan, and authoring for clinical leads.

Reading is for every role. Authoring views carry ``role_required(*AUTHOR_ROLES)``
(403 for anyone else) and then check the pathway's owning unit (403 outside it).
An unknown pathway, or a draft the user may not see, is a 404.

Authoring is HTMX-first and works without JavaScript: each form view renders a
fragment for HTMX requests and a full page otherwise. A successful HTMX write
answers with the re-rendered plan and retargets it onto ``#plan``; a failed one
answers with the form again, errors by the field and input kept.

Keyboard focus follows each HTMX swap (static/js/commonpath.js): an opened form
focuses its first field, a failed one its error summary, and a change the item it
changed (``focus``: element ids, the first that exists wins), while ``#plan-status``
says what was done.

Costs are not computed here (pathways must not import costing): the plan
fragment loads costing's panel (``costing:version_cost``) with HTMX.
"""

import json
import re

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import OrgUnit
from accounts.permissions import AUTHOR_ROLES, any_member, role_required
from accounts.web import form_errors

from . import selectors, services
from .diff import version_diff
from .exchange import version_export, version_import
from .forms import (
    DraftForm,
    ImportForm,
    PathwayEditForm,
    PathwayForm,
    PlannedResourceForm,
    PublishForm,
    RetireForm,
    StageForm,
    StepForm,
)
from .models import Pathway, PathwayVersion, PlannedResource, Stage, Step

Status = PathwayVersion.Status
FOCUS_ID = re.compile(r"[a-z][a-z0-9-]{0,60}")


# --- access helpers -------------------------------------------------------------------------


def _pathway_or_404(code: str) -> Pathway:
    return get_object_or_404(Pathway.objects.select_related("owner_unit"), code=code)


def _version_or_404(request, code: str, number: int) -> PathwayVersion:
    version = get_object_or_404(
        selectors.visible_versions(request.user).select_related("pathway__owner_unit", "published_by"),
        pathway__code=code,
        number=number,
    )
    return version


def _require_author(request, pathway: Pathway) -> None:
    if not selectors.can_author(request.user, pathway):
        raise PermissionDenied


def _draft_for_author(request, code: str, number: int) -> PathwayVersion:
    version = _version_or_404(request, code, number)
    _require_author(request, version.pathway)
    return version


def _stage_for_author(request, pk: int) -> Stage:
    stage = get_object_or_404(Stage.objects.select_related("version__pathway"), pk=pk)
    _require_author(request, stage.version.pathway)
    return stage


def _step_for_author(request, pk: int) -> Step:
    step = get_object_or_404(Step.objects.select_related("version__pathway", "stage", "anchor"), pk=pk)
    _require_author(request, step.version.pathway)
    return step


def _planned_for_author(request, pk: int) -> PlannedResource:
    planned = get_object_or_404(PlannedResource.objects.select_related("step__version__pathway", "resource"), pk=pk)
    _require_author(request, planned.step.version.pathway)
    return planned


def _frozen(request, version: PathwayVersion) -> HttpResponse | None:
    """Refuse to open an edit form on a published or retired version, on GET as on POST.

    The services refuse the write anyway; this spares the lead filling in a form that
    cannot be saved, and offers the way forward: a new draft (or the one already open).
    """
    if version.status == Status.DRAFT:
        return None
    pathway = version.pathway
    context = {
        "version": version,
        "pathway": pathway,
        "draft": pathway.versions.filter(status=Status.DRAFT).first(),
        "status": version.get_status_display().lower(),
    }
    template = "pathways/partials/frozen.html" if request.htmx else "pathways/frozen.html"
    return render(request, template, context)


def _version_url(version: PathwayVersion) -> str:
    return reverse("pathways:version_detail", args=[version.pathway.code, version.number])


# --- rendering --------------------------------------------------------------------------------


def _plan_context(request, version: PathwayVersion) -> dict:
    editable = version.status == Status.DRAFT and selectors.can_author(request.user, version.pathway)
    context = {
        "version": version,
        "pathway": version.pathway,
        "stages": selectors.plan(version),
        "editable": editable,
    }
    if editable:
        context["problems"] = services.version_problems(version)
    return context


def _plan_response(request, version: PathwayVersion, *, message: str = "", focus: str = "") -> HttpResponse:
    """After an HTMX write: the whole plan, swapped onto #plan, focus on what changed."""
    context = _plan_context(request, version)
    context.update({"status_message": message, "focus_after": focus})
    response = render(request, "pathways/partials/plan.html", context)
    response["HX-Retarget"] = "#plan"
    response["HX-Reswap"] = "outerHTML"
    return response


def _done(request, version: PathwayVersion, message: str, *, focus: str):
    if request.htmx:
        return _plan_response(request, version, message=message, focus=focus)
    messages.success(request, message)
    return redirect(_version_url(version))


def _form_response(
    request, version: PathwayVersion, form, *, title: str, action: str, form_id: str, submit: str, back: str
):
    """The inline form; ``back`` is the id of the control that opened it, where Cancel returns focus."""
    context = {
        "version": version,
        "pathway": version.pathway,
        "form": form,
        "title": title,
        "action": action,
        "form_id": form_id,
        "submit": submit,
        "back": back,
    }
    if request.htmx:
        return render(request, "pathways/partials/inline_form.html", context)
    return render(request, "pathways/edit_form.html", context)


# --- reading ------------------------------------------------------------------------------------


@any_member
def catalogue(request):
    q = request.GET.get("q", "").strip()
    specialty = request.GET.get("specialty", "")
    status = request.GET.get("status", "")
    pathways = selectors.catalogue(request.user, q=q, specialty=specialty, status=status)
    statuses = [(s.value, s.label) for s in Status if s != Status.DRAFT or selectors.can_see_drafts(request.user)]
    context = {
        "pathways": pathways,
        "q": q,
        "specialty": specialty,
        "status": status,
        "specialties": selectors.specialties(),
        "statuses": statuses,
        "can_create": selectors.can_author_any(request.user),
    }
    template = (
        "pathways/partials/catalogue_results.html"
        if request.htmx and request.htmx.target == "results"
        else "pathways/catalogue.html"
    )
    return render(request, template, context)


@any_member
def pathway_detail(request, code: str):
    pathway = _pathway_or_404(code)
    versions = selectors.pathway_versions(request.user, pathway)
    for version in versions:
        version.pathway = pathway  # already loaded, with its owner unit
    selectors.annotate_versions(pathway, versions)
    if pathway.shown is None:
        raise Http404
    return _version_page(request, pathway.shown, versions)


@any_member
def version_detail(request, code: str, number: int):
    version = _version_or_404(request, code, number)
    return _version_page(request, version, selectors.pathway_versions(request.user, version.pathway))


def _version_page(request, version: PathwayVersion, versions: list[PathwayVersion]):
    pathway = version.pathway
    selectors.annotate_versions(pathway, versions)
    can_author = selectors.can_author(request.user, pathway)
    context = _plan_context(request, version)
    context.update(
        {
            "versions": versions,
            "changes": selectors.recent_changes([v.pk for v in versions]),
            "can_author": can_author,
            "previous": next((v for v in versions if v.number < version.number), None),
        }
    )
    return render(request, "pathways/version_detail.html", context)


@any_member
def version_plan(request, code: str, number: int):
    """The plan fragment alone (HTMX: cancel an inline form, refresh after a change)."""
    version = _version_or_404(request, code, number)
    if not request.htmx:
        return redirect(_version_url(version))
    context = _plan_context(request, version)
    # Cancel returns focus to the control that opened the form: an element id, nothing else.
    focus = request.GET.get("focus", "")
    context["focus_after"] = focus if FOCUS_ID.fullmatch(focus) else "plan-h"
    return render(request, "pathways/partials/plan.html", context)


@any_member
def version_diff_view(request, code: str, number: int, other: int):
    version = _version_or_404(request, code, number)
    against = _version_or_404(request, code, other)
    old, new = (against, version) if against.number < version.number else (version, against)
    return render(request, "pathways/version_diff.html", {"diff": version_diff(old, new), "pathway": version.pathway})


@any_member
def version_export_json(request, code: str, number: int):
    version = _version_or_404(request, code, number)
    response = JsonResponse(version_export(version), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{code}-v{number}.json"'
    return response


# --- pathways and versions ------------------------------------------------------------------------


def _author_units(request):
    return OrgUnit.objects.filter(pk__in=selectors.author_unit_ids(request.user)).order_by("path")


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def pathway_new(request):
    form = PathwayForm(request.POST or None, units=_author_units(request))
    if request.method == "POST" and form.is_valid():
        try:
            pathway = services.pathway_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"{pathway.code} created. Add its stages and steps, then publish it.")
            return redirect(_version_url(pathway.versions.get()))
    return render(request, "pathways/pathway_form.html", {"form": form, "title": "New pathway"})


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def pathway_edit(request, code: str):
    pathway = _pathway_or_404(code)
    _require_author(request, pathway)
    initial = {"name": pathway.name, "specialty": pathway.specialty, "description": pathway.description}
    form = PathwayEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.pathway_update(pathway=pathway, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, "Pathway details saved.")
            return redirect("pathways:pathway_detail", code=pathway.code)
    return render(
        request, "pathways/pathway_form.html", {"form": form, "title": f"Edit {pathway.code}", "pathway": pathway}
    )


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def pathway_import(request):
    form = ImportForm(request.POST or None, request.FILES or None, units=_author_units(request))
    if request.method == "POST" and form.is_valid():
        try:
            document = json.loads(form.cleaned_data["file"].read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            form.add_error("file", f"This is not a JSON document: {exc}")
        else:
            try:
                version = version_import(
                    document=document,
                    owner_unit=form.cleaned_data["owner_unit"],
                    actor=request.user,
                    code=form.cleaned_data["code"] or None,
                )
            except ValidationError as exc:
                form_errors(form, exc)
            else:
                messages.success(request, f"Imported as {version.pathway.code}, a draft: review it, then publish it.")
                return redirect(_version_url(version))
    return render(request, "pathways/import_form.html", {"form": form})


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def version_draft(request, code: str):
    """Ask what the draft is for (recorded in the history), then copy the current version."""
    pathway = _pathway_or_404(code)
    _require_author(request, pathway)
    form = DraftForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            draft = services.pathway_version_draft(pathway=pathway, actor=request.user, note=form.cleaned_data["note"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("pathways:pathway_detail", code=code)
        messages.success(request, f"Version {draft.number} drafted from the current version. It is yours to edit.")
        return redirect(_version_url(draft))
    context = {
        "pathway": pathway,
        "form": form,
        "source": services.current_version(pathway),
        "draft": pathway.versions.filter(status=Status.DRAFT).first(),
    }
    return render(request, "pathways/draft.html", context)


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def version_publish(request, code: str, number: int):
    version = _draft_for_author(request, code, number)
    if version.status != Status.DRAFT:
        messages.error(request, f"Version {version.number} is already {version.get_status_display().lower()}.")
        return redirect(_version_url(version))
    form = PublishForm(request.POST or None)
    current = version.pathway.versions.filter(status=Status.PUBLISHED).first()
    if request.method == "POST" and form.is_valid():
        try:
            services.pathway_version_publish(
                version=version,
                actor=request.user,
                note=form.cleaned_data["note"],
                effective_from=form.cleaned_data["effective_from"],
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            message = f"{code} version {number} is published."
            takes_effect = form.cleaned_data["effective_from"]
            if current is not None and takes_effect and takes_effect > timezone.localdate():
                # The version it replaces stays the one new episodes follow until then.
                message += (
                    f" It takes effect on {takes_effect:%-d %b %Y}: until then, new episodes follow version "
                    f"{current.number}."
                )
            messages.success(request, message)
            return redirect(_version_url(version))
    context = {
        "version": version,
        "pathway": version.pathway,
        "form": form,
        "problems": services.version_problems(version),
        "current": current,
        "diff": version_diff(current, version) if current else None,
    }
    return render(request, "pathways/publish.html", context)


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def version_retire(request, code: str, number: int):
    version = _draft_for_author(request, code, number)
    form = RetireForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.pathway_version_retire(version=version, actor=request.user, note=form.cleaned_data["note"])
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"{code} version {number} is retired. No new episode can start on it.")
            return redirect(_version_url(version))
    return render(request, "pathways/retire.html", {"version": version, "pathway": version.pathway, "form": form})


# --- stages ------------------------------------------------------------------------------------------


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def stage_add(request, code: str, number: int):
    version = _draft_for_author(request, code, number)
    if refusal := _frozen(request, version):
        return refusal
    form = StageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            stage = services.stage_add(version=version, name=form.cleaned_data["name"], actor=request.user)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            return _done(request, version, "Stage added.", focus=f"stage-{stage.pk}-title")
    return _form_response(
        request,
        version,
        form,
        title="Add a stage",
        action=reverse("pathways:stage_add", args=[code, number]),
        form_id="add-stage",
        submit="Add stage",
        back="add-stage-link",
    )


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def stage_edit(request, pk: int):
    stage = _stage_for_author(request, pk)
    if refusal := _frozen(request, stage.version):
        return refusal
    form = StageForm(request.POST or None, initial={"name": stage.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.stage_update(stage=stage, name=form.cleaned_data["name"], actor=request.user)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            return _done(request, stage.version, "Stage renamed.", focus=f"stage-{pk}-title")
    return _form_response(
        request,
        stage.version,
        form,
        title=f"Rename the stage {stage.name}",
        action=reverse("pathways:stage_edit", args=[pk]),
        form_id=f"stage-{pk}-form",
        submit="Save",
        back=f"stage-{pk}-rename",
    )


@role_required(*AUTHOR_ROLES)
@require_POST
def stage_move(request, pk: int):
    stage = _stage_for_author(request, pk)
    direction = "up" if request.POST.get("direction") == "up" else "down"
    return _one_click(
        request,
        stage.version,
        "Stage moved.",
        # The same button again, for a further move; at the end of the plan it is gone: the stage then.
        f"stage-{pk}-{direction} stage-{pk}-title",
        services.stage_move,
        stage=stage,
        offset=-1 if direction == "up" else 1,
    )


@role_required(*AUTHOR_ROLES)
@require_POST
def stage_remove(request, pk: int):
    stage = _stage_for_author(request, pk)
    return _one_click(request, stage.version, "Stage removed.", "plan-h", services.stage_remove, stage=stage)


def _refused(request, version: PathwayVersion, exc: ValidationError):
    """A one-click action the rules refuse: say why, above the plan."""
    if request.htmx:
        context = _plan_context(request, version)
        context["refusal"] = " ".join(exc.messages)
        response = render(request, "pathways/partials/plan.html", context)
        response["HX-Retarget"] = "#plan"
        response["HX-Reswap"] = "outerHTML"
        return response
    messages.error(request, " ".join(exc.messages))
    return redirect(_version_url(version))


def _one_click(request, version: PathwayVersion, message: str, focus: str, change, **arguments):
    """Apply a one-click change (move, remove) as the author: the plan again, or why it was refused."""
    try:
        change(**arguments, actor=request.user)
    except ValidationError as exc:
        return _refused(request, version, exc)
    return _done(request, version, message, focus=focus)


# --- steps ---------------------------------------------------------------------------------------------


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def step_add(request, pk: int):
    stage = _stage_for_author(request, pk)
    version = stage.version
    if refusal := _frozen(request, version):
        return refusal
    form = StepForm(request.POST or None, version=version)
    if request.method == "POST" and form.is_valid():
        try:
            step = services.step_add(
                stage=stage, actor=request.user, must_follow=form.cleaned_data["must_follow"], **form.service_fields()
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            return _done(request, version, "Step added.", focus=f"step-{step.pk}-title")
    return _form_response(
        request,
        version,
        form,
        title=f"Add a step to {stage.name}",
        action=reverse("pathways:step_add", args=[pk]),
        form_id=f"add-step-{pk}",
        submit="Add step",
        back=f"add-step-{pk}-link",
    )


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def step_edit(request, pk: int):
    step = _step_for_author(request, pk)
    version = step.version
    if refusal := _frozen(request, version):
        return refusal
    form = StepForm(request.POST or None, version=version, step=step, initial=StepForm.initial_for(step))
    if request.method == "POST" and form.is_valid():
        try:
            services.step_update(
                step=step, actor=request.user, must_follow=form.cleaned_data["must_follow"], **form.service_fields()
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            return _done(request, version, f"{form.cleaned_data['code']} saved.", focus=f"step-{pk}-title")
    return _form_response(
        request,
        version,
        form,
        title=f"Edit {step.code}",
        action=reverse("pathways:step_edit", args=[pk]),
        form_id=f"step-{pk}-form",  # not step-{pk}: that is the step itself, on the plan
        submit="Save step",
        back=f"step-{pk}-edit",
    )


@role_required(*AUTHOR_ROLES)
@require_POST
def step_move(request, pk: int):
    step = _step_for_author(request, pk)
    direction = "up" if request.POST.get("direction") == "up" else "down"
    return _one_click(
        request,
        step.version,
        f"{step.code} moved.",
        f"step-{pk}-{direction} step-{pk}-title",
        services.step_move,
        step=step,
        offset=-1 if direction == "up" else 1,
    )


@role_required(*AUTHOR_ROLES)
@require_POST
def step_remove(request, pk: int):
    step = _step_for_author(request, pk)
    return _one_click(
        request, step.version, f"{step.code} removed.", f"stage-{step.stage_id}-title", services.step_remove, step=step
    )


# --- planned resources -------------------------------------------------------------------------------


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def planned_add(request, pk: int):
    step = _step_for_author(request, pk)
    if refusal := _frozen(request, step.version):
        return refusal
    form = PlannedResourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.planned_resource_add(step=step, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            return _done(request, step.version, "Resource added.", focus=f"step-{pk}-title")
    return _form_response(
        request,
        step.version,
        form,
        title=f"Plan a resource for {step.code}",
        action=reverse("pathways:planned_add", args=[pk]),
        form_id=f"add-resource-{pk}",
        submit="Add resource",
        back=f"step-{pk}-add-resource",
    )


@role_required(*AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def planned_edit(request, pk: int):
    planned = _planned_for_author(request, pk)
    if refusal := _frozen(request, planned.step.version):
        return refusal
    initial = {"resource": planned.resource_id, "quantity": planned.quantity, "headcount": planned.headcount}
    form = PlannedResourceForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.planned_resource_update(planned=planned, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            return _done(request, planned.step.version, "Resource saved.", focus=f"step-{planned.step_id}-title")
    return _form_response(
        request,
        planned.step.version,
        form,
        title=f"Edit {planned.resource.name} on {planned.step.code}",
        action=reverse("pathways:planned_edit", args=[pk]),
        form_id=f"resource-{pk}",
        submit="Save",
        back=f"resource-{pk}-edit",
    )


@role_required(*AUTHOR_ROLES)
@require_POST
def planned_remove(request, pk: int):
    planned = _planned_for_author(request, pk)
    return _one_click(
        request,
        planned.step.version,
        "Resource removed.",
        f"step-{planned.step_id}-title",
        services.planned_resource_remove,
        planned=planned,
    )
