"""Clinicians' pages: my work, episodes, recording and explaining variances, review.

Every view states its access rule (``role_required``) and reads through the
scoped selectors, so an episode outside the user's units is a 404. Managers and
finance hold none of these roles: they see no individual episode (see
``selectors.py``). Writes go through ``services.py``, the same path as the API.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.audit import audit_record
from accounts.models import Membership
from accounts.permissions import EPISODE_ROLES, role_required
from accounts.web import form_errors
from config.pagination import CappedPaginator
from pathways.models import Step

from . import selectors, services
from .forms import (
    DISCHARGE_DESTINATIONS,
    AmendForm,
    EpisodeCloseForm,
    EpisodeExitForm,
    EpisodeOutcomesForm,
    EpisodeStartForm,
    EventForm,
    ReviewForm,
    VarianceForm,
    WithdrawForm,
)
from .models import Episode, StepEvent, Variance

Role = Membership.Role
PAGE_SIZE = 50


# --- helpers ------------------------------------------------------------------------


def _episode_or_404(request, pk: int) -> Episode:
    queryset = selectors.episodes_for(request.user).select_related(
        "version__pathway", "org_unit", "responsible_clinician"
    )
    episode = get_object_or_404(queryset, pk=pk)
    if request.method == "GET":
        # Who looked at which patient's episode: the "who accessed this" report.
        audit_record(action="episode.read", obj=episode, episode_ref=episode.patient_ref, detail={"via": "browser"})
    return episode


def _variance_or_404(request, pk: int) -> Variance:
    queryset = selectors.variances_for(request.user).select_related(
        "episode__version__pathway",
        "episode__org_unit",
        "episode__responsible_clinician",
        "step",
        "resource",
        "reason",
        "recorded_by",
        "reviewed_by",
        "detection__event",
    )
    variance = get_object_or_404(queryset, pk=pk)
    if request.method == "GET":
        audit_record(
            action="variance.read",
            obj=variance,
            episode_ref=variance.episode.patient_ref,
            detail={"via": "browser", "episode": variance.episode_id},
        )
    return variance


def _audit_list(action: str, object_type: str, rows) -> None:
    """A list page shows patient references: record which, as the API does for its lists."""
    audit_record(action=action, object_type=object_type, detail={"via": "browser", "ids": [row.pk for row in rows]})


def _next_url(request, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return default


def _reasons_for(episode: Episode, *, step: Step | None, variance_type: str | None):
    return selectors.ranked_reasons(
        pathway_id=episode.version.pathway_id, step_code=step.code if step else None, variance_type=variance_type
    )


# --- my work and episodes ------------------------------------------------------------


@role_required(*EPISODE_ROLES)
def inbox(request):
    """Everything waiting for me: unexplained variances on my patients and on my units' unassigned
    episodes, and my active episodes."""
    unexplained = (
        selectors.unexplained_for(request.user)
        .select_related("episode__version__pathway", "step", "detection__event")
        .order_by("occurred_at", "id")
    )
    episodes = selectors.with_open_count(
        Episode.objects.active()
        .filter(responsible_clinician=request.user)
        .select_related("version__pathway", "org_unit")
        .order_by("started_at", "id")
    )
    unassigned = Paginator(
        selectors.unassigned_unexplained_for(request.user)
        .select_related("episode__version__pathway", "step", "detection__event")
        .order_by("occurred_at", "id"),
        PAGE_SIZE,
    ).get_page(request.GET.get("page"))
    unexplained, episodes = list(unexplained), list(episodes)
    _audit_list("variance.list", "variances.variance", [*unexplained, *unassigned])
    _audit_list("episode.list", "variances.episode", episodes)
    context = {"unexplained": unexplained, "unassigned": unassigned, "episodes": episodes}
    return render(request, "variances/inbox.html", context)


@role_required(*EPISODE_ROLES)
def episode_list(request):
    status = request.GET.get("status", Episode.Status.ACTIVE)
    mine = request.GET.get("mine") == "1"
    query = (request.GET.get("q") or "").strip().upper()
    visible = selectors.episodes_for(request.user)
    if mine:
        visible = visible.filter(responsible_clinician=request.user)
    if query:
        visible = visible.filter(patient_ref__startswith=query)
    episodes = selectors.with_open_count(
        visible.select_related("version__pathway", "org_unit", "responsible_clinician").order_by("-started_at", "-id")
    )
    if status in Episode.Status.values:
        episodes = episodes.filter(status=status)
    page = Paginator(episodes, PAGE_SIZE).get_page(request.GET.get("page"))
    _audit_list("episode.list", "variances.episode", page.object_list)
    hidden, show_all_url = [], ""
    if not page.object_list and status in Episode.Status.values:
        # Nothing with this status (by default: active): say what the filter hides.
        counts = visible.exclude(status=status).values_list("status").annotate(n=Count("pk")).order_by("status")
        hidden = [(n, value) for value, n in counts]  # the values read as adjectives: "3 completed episodes"
        kept = {"q": query, "mine": "1" if mine else ""}
        show_all_url = "?" + urlencode({"status": ""} | {key: value for key, value in kept.items() if value})
    return render(
        request,
        "variances/episode_list.html",
        {
            "page": page,
            "status": status,
            "mine": mine,
            "q": query,
            "statuses": [("", "All"), *Episode.Status.choices],
            "hidden": hidden,
            "hidden_total": sum(n for n, _ in hidden),
            "show_all_url": show_all_url,
        },
    )


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def episode_start(request):
    form = EpisodeStartForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            episode = services.episode_start(
                pathway=data["pathway"],
                patient_ref=data["patient_ref"],
                org_unit=data["org_unit"],
                responsible_clinician=data["responsible_clinician"],
                started_at=data["started_at"],
                actor=request.user,
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"Episode started for {episode.patient_ref} on {episode.version}.")
            return redirect("variances:episode_detail", pk=episode.pk)
    return render(request, "variances/episode_start.html", {"form": form})


@role_required(*EPISODE_ROLES)
def episode_detail(request, pk: int):
    episode = _episode_or_404(request, pk)
    timeline = selectors.episode_timeline(episode)
    active = episode.status == Episode.Status.ACTIVE
    return render(
        request,
        "variances/episode_detail.html",
        {
            "episode": episode,
            "event_form": EventForm(episode=episode) if active else None,
            "destination": dict(DISCHARGE_DESTINATIONS).get(
                episode.discharge_destination, episode.discharge_destination
            ),
            **({} if active else _outcomes_context(episode, EpisodeOutcomesForm(episode=episode))),
            **timeline,
        },
    )


def _already_ended(request, episode: Episode):
    """Closing or exiting an episode that has ended already: say so on its page."""
    messages.info(request, f"This episode is already {episode.get_status_display().lower()}.")
    return redirect("variances:episode_detail", pk=episode.pk)


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def episode_close(request, pk: int):
    episode = _episode_or_404(request, pk)
    if episode.status != Episode.Status.ACTIVE:
        return _already_ended(request, episode)
    form = EpisodeCloseForm(request.POST or None, episode=episode)
    if request.method == "POST" and form.is_valid():
        try:
            services.episode_close(
                episode=episode,
                ended_at=form.cleaned_data["ended_at"],
                discharge_destination=form.cleaned_data["discharge_destination"],
                readmitted_30d=form.outcome("readmitted_30d"),
                complication=form.outcome("complication"),
                actor=request.user,
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, "Episode completed. Any step still missing is now listed as an omission.")
            return redirect("variances:episode_detail", pk=pk)
    return render(request, "variances/episode_close.html", {"episode": episode, "form": form})


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def episode_exit(request, pk: int):
    episode = _episode_or_404(request, pk)
    if episode.status != Episode.Status.ACTIVE:
        return _already_ended(request, episode)
    reasons = _reasons_for(episode, step=None, variance_type=Variance.Type.EXIT)
    form = EpisodeExitForm(request.POST or None, episode=episode, reasons=reasons)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["reason_code"]
        try:
            services.episode_exit(
                episode=episode,
                ended_at=form.cleaned_data["ended_at"],
                reason=form.cleaned_data["reason"],
                reason_code=code,
                cause=code.default_cause if code else "",
                actor=request.user,
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, "The patient has left the pathway. A clinical lead will review the exit.")
            return redirect("variances:episode_detail", pk=pk)
    return render(request, "variances/episode_exit.html", {"episode": episode, "form": form})


def _outcomes_context(episode: Episode, form: EpisodeOutcomesForm, saved: str = "") -> dict:
    """What the outcomes panel shows: the outcomes now, the form, and every change since the episode ended."""
    return {"outcomes_form": form, "outcome_history": selectors.outcome_history(episode), "outcomes_saved": saved}


STALE_AMEND = (
    "Someone changed this variance while you had it open: it is now revision {revision}, and their change is "
    "in its history. What you typed is kept below; check it against theirs, then save again to apply it."
)
STALE_OUTCOMES = (
    "Someone changed this episode while you had it open: the outcomes recorded now are shown above. "
    "Check them, then save again to record yours."
)


def _outcomes_saved(changed: dict) -> str:
    if not changed:
        return "Nothing changed: these outcomes were already recorded."
    said = ", ".join(
        f"{selectors.OUTCOME_LABELS[name].lower()}: {selectors.outcome_text(value).lower()}"
        for name, value in changed.items()
    )
    return f"Outcomes saved ({said}). The change is kept in the history below."


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def episode_outcomes(request, pk: int):
    """Record or correct the outcomes of a completed or exited episode, after discharge.

    The same people as may complete it: whoever may open it. The episode page holds the form,
    which HTMX posts here and swaps back in place; without JavaScript a save returns to the
    episode page, and a form with problems is shown on this page of its own.
    """
    episode = _episode_or_404(request, pk)
    if episode.status == Episode.Status.ACTIVE:
        messages.info(request, services.OUTCOMES_OF_ACTIVE)
        url = reverse("variances:episode_detail", args=[pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    form = EpisodeOutcomesForm(request.POST or None, episode=episode)
    saved = ""
    if request.method == "POST" and form.is_valid():
        try:
            episode = services.episode_record_outcomes(
                episode=episode,
                readmitted_30d=form.outcome("readmitted_30d"),
                complication=form.outcome("complication"),
                expected_revision=form.cleaned_data["expected_revision"],
                actor=request.user,
            )
        except services.StaleRevisionError:
            # What was chosen stays, now against the episode as it stands: saving again applies it knowingly.
            episode.refresh_from_db()
            data = request.POST.copy()
            data["expected_revision"] = episode.row_version
            form = EpisodeOutcomesForm(data, episode=episode)
            form.is_valid()
            form.add_error(None, STALE_OUTCOMES)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            saved = _outcomes_saved(episode.outcomes_changed)
            if not request.htmx:
                messages.success(request, saved)
                return redirect(reverse("variances:episode_detail", args=[pk]) + "#outcomes")
            form = EpisodeOutcomesForm(episode=episode)
    context = {"episode": episode, **_outcomes_context(episode, form, saved)}
    if request.htmx:
        return render(request, "variances/partials/episode_outcomes.html", context)
    return render(request, "variances/episode_outcomes.html", context)


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def event_record(request, pk: int):
    """Record a step done (or an activity off the pathway), with its actual quantities where they differed.

    Choosing the step asks (HTMX) for its quantity rows again, suggested from the step's plan.
    """
    if request.htmx and request.method == "GET":
        # Only the pathway's planned resources go back: no patient data, so no "episode read" to audit.
        episode = get_object_or_404(selectors.episodes_for(request.user), pk=pk)
        form = EventForm(episode=episode, step=_event_step(episode, request.GET.get("step")))
        return render(request, "variances/partials/event_quantities.html", {"form": form})
    episode = _episode_or_404(request, pk)
    step = _event_step(episode, (request.POST or request.GET).get("step"))
    form = EventForm(request.POST or None, episode=episode, step=step)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.event_record(
                episode=episode,
                step=data["step"],
                activity=data["activity"] if not data["step"] else "",
                occurred_at=data["occurred_at"],
                performed_by=data["performed_by"],
                source=StepEvent.Source.MANUAL,
                quantities=form.quantities(),
                actor=request.user,
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            label = data["step"].name if data["step"] else data["activity"]
            messages.success(request, f"Recorded: {label}.")
            return redirect("variances:episode_detail", pk=pk)
    return render(request, "variances/event_form.html", {"episode": episode, "form": form})


def _event_step(episode: Episode, value: str | None) -> Step | None:
    """The step named in the request, if it is one of this episode's version (for the rows' hints only)."""
    if not (value or "").isdigit() or len(value) > 12:
        return None
    return Step.objects.filter(version_id=episode.version_id, pk=int(value)).first()


# --- variances ------------------------------------------------------------------------


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def variance_record(request, pk: int):
    episode = _episode_or_404(request, pk)
    step = None
    step_id = request.POST.get("step") or request.GET.get("step")
    if step_id and str(step_id).isdigit():
        step = Step.objects.filter(version_id=episode.version_id, pk=step_id).first()
    variance_type = request.GET.get("type") or request.POST.get("variance_type")
    if variance_type not in Variance.Type.values:
        variance_type = None
    reasons = _reasons_for(episode, step=step, variance_type=variance_type)
    form = VarianceForm(request.POST or None, episode=episode, reasons=reasons, step=step, variance_type=variance_type)
    if request.method == "GET" and (resource_id := request.GET.get("resource", "")).isdigit():
        # From a cost line ("record why" on a dearer item): the resource it is about. The
        # field's choices are the episode's resources, so any other id selects nothing.
        form.initial["resource"] = int(resource_id)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            variance = services.variance_record(
                episode=episode,
                step=data["step"],
                resource=data["resource"],
                variance_type=data["variance_type"],
                cause=data["cause"],
                reason=data["reason"],
                valence=data["valence"],
                level=data["level"],
                rationale=data["rationale"],
                action_taken=data["action_taken"],
                occurred_at=data["occurred_at"],
                actor=request.user,
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, f"{variance.get_variance_type_display()} recorded with its reason.")
            return redirect("variances:episode_detail", pk=pk)
    return render(
        request,
        "variances/variance_form.html",
        {"episode": episode, "form": form, "step": step, "variance_type": variance_type},
    )


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def variance_explain(request, pk: int):
    variance = _variance_or_404(request, pk)
    episode = variance.episode
    if variance.status != Variance.Status.UNEXPLAINED:
        messages.info(request, "This variance already has its reason.")
        return redirect("variances:variance_detail", pk=pk)
    reasons = _reasons_for(episode, step=variance.step, variance_type=variance.variance_type)
    form = VarianceForm(
        request.POST or None,
        episode=episode,
        reasons=reasons,
        step=variance.step,
        variance_type=variance.variance_type,
        explaining=True,
    )
    if variance.rationale and not form.is_bound:
        form.initial["rationale"] = variance.rationale
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.variance_explain(
                variance=variance,
                cause=data["cause"],
                reason=data["reason"],
                valence=data["valence"],
                rationale=data["rationale"],
                action_taken=data["action_taken"],
                actor=request.user,
            )
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, "Thank you: the departure is documented with its reason.")
            return HttpResponseRedirect(_next_url(request, reverse("home")))
    return render(
        request,
        "variances/variance_explain.html",
        {"variance": variance, "episode": episode, "form": form, "next": _next_url(request, "")},
    )


@role_required(*EPISODE_ROLES)
def variance_detail(request, pk: int):
    """The variance now, and every revision it went through (who, when, why, what)."""
    variance = _variance_or_404(request, pk)
    revisions = list(variance.revisions.select_related("changed_by").order_by("number"))
    history = _history(revisions)
    return render(
        request,
        "variances/variance_detail.html",
        {
            "variance": variance,
            "episode": variance.episode,
            "history": history,
            "can_change": selectors.can_change_variance(request.user, variance),
            "can_review": services.can_review(request.user, variance.episode),
            # Whoever wrote the current revision documented it as it stands: another lead reviews it.
            "self_review": services.SELF_REVIEW if revisions and revisions[-1].changed_by_id == request.user.pk else "",
        },
    )


HISTORY_FIELDS = [
    ("status", "Status"),
    ("variance_type", "Type"),
    ("step_id", "Step"),
    ("reason_id", "Reason"),
    ("cause", "Cause"),
    ("valence", "Valence"),
    ("level", "Level"),
    ("rationale", "Rationale"),
    ("action_taken", "Action taken"),
    ("occurred_at", "Occurred"),
    ("justified", "Justified"),
    ("avoidable", "Avoidable"),
    ("review_comment", "Review comment"),
    ("withdrawn_reason", "Withdrawn because"),
]


def _history(revisions) -> list[dict]:
    """Each revision with the fields it changed (old -> new), names resolved in two queries."""
    from .models import ReasonCode

    states = [services.variance_state(r) for r in revisions]
    step_ids = {s.get("step_id") for s in states} - {None}
    reason_ids = {s.get("reason_id") for s in states} - {None}
    steps = dict(Step.objects.filter(pk__in=step_ids).values_list("pk", "name")) if step_ids else {}
    reasons = dict(ReasonCode.objects.filter(pk__in=reason_ids).values_list("pk", "display")) if reason_ids else {}

    labels = {
        "status": dict(Variance.Status.choices),
        "variance_type": dict(Variance.Type.choices),
        "cause": dict(Variance.Cause.choices),
        "valence": dict(Variance.Valence.choices),
        "level": dict(Variance.Level.choices),
    }

    def show(name, value):
        if value is None or value == "":
            return "—"
        if name == "step_id":
            return steps.get(value, value)
        if name == "reason_id":
            return reasons.get(value, value)
        if isinstance(value, bool):
            return "Yes" if value else "No"
        if isinstance(value, datetime):
            return timezone.localtime(value).strftime("%-d %b %Y %H:%M")
        return labels.get(name, {}).get(value, value)

    history = []
    previous: dict = {}
    for revision, state in zip(revisions, states, strict=True):
        changes = [
            {
                "label": label,
                "old": show(name, previous.get(name)) if previous else None,
                "new": show(name, state.get(name)),
            }
            for name, label in HISTORY_FIELDS
            if not previous or previous.get(name) != state.get(name)
        ]
        history.append({"revision": revision, "changes": changes, "state": state})
        previous = state
    return history


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def variance_amend(request, pk: int):
    variance = _variance_or_404(request, pk)
    if not selectors.can_change_variance(request.user, variance):
        raise PermissionDenied
    reasons = _reasons_for(variance.episode, step=variance.step, variance_type=variance.variance_type)
    form = AmendForm(request.POST or None, variance=variance, reasons=reasons)
    if request.method == "POST" and form.is_valid():
        try:
            services.variance_amend(
                variance=variance,
                changes=form.changes(),
                reason=form.cleaned_data["amend_reason"],
                expected_revision=form.cleaned_data["expected_revision"],
                actor=request.user,
            )
        except services.StaleRevisionError:
            # What was typed stays, now against the variance as it stands: saving again applies it knowingly.
            # (Kept against the revision first read, the form could never be saved.)
            variance = _variance_or_404(request, pk)
            data = request.POST.copy()
            data["expected_revision"] = variance.revision
            form = AmendForm(data, variance=variance, reasons=reasons)
            form.is_valid()
            form.add_error(None, STALE_AMEND.format(revision=variance.revision))
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, "Amended. The earlier version stays in the history below.")
            return redirect("variances:variance_detail", pk=pk)
    return render(
        request, "variances/variance_amend.html", {"variance": variance, "episode": variance.episode, "form": form}
    )


@role_required(*EPISODE_ROLES)
@require_http_methods(["GET", "POST"])
def variance_withdraw(request, pk: int):
    variance = _variance_or_404(request, pk)
    if not selectors.can_change_variance(request.user, variance):
        raise PermissionDenied
    form = WithdrawForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.variance_withdraw(variance=variance, reason=form.cleaned_data["reason"], actor=request.user)
        except ValidationError as exc:
            form_errors(form, exc)
        else:
            messages.success(request, "Withdrawn. It stays readable in the history, marked withdrawn.")
            return redirect("variances:variance_detail", pk=pk)
    return render(
        request, "variances/variance_withdraw.html", {"variance": variance, "episode": variance.episode, "form": form}
    )


# --- clinical lead's review -------------------------------------------------------------


@role_required(Role.CLINICAL_LEAD)
def review_queue(request):
    queue = selectors.review_queue_for(request.user)
    required_only = request.GET.get("required") == "1"
    if required_only:
        queue = queue.filter(review_required=True)
    page = CappedPaginator(queue, PAGE_SIZE, cap=selectors.REVIEW_COUNT_CAP).get_page(request.GET.get("page"))
    _audit_list("variance.list", "variances.variance", page.object_list)
    return render(
        request,
        "variances/review_queue.html",
        {"page": page, "required_only": required_only, "form": ReviewForm(), "next": request.get_full_path()},
    )


@role_required(Role.CLINICAL_LEAD)
@require_POST
def variance_review(request, pk: int):
    variance = _variance_or_404(request, pk)
    if not services.can_review(request.user, variance.episode):
        raise PermissionDenied
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            variance = services.variance_review(variance=variance, actor=request.user, **form.verdict())
        except ValidationError as exc:
            form_errors(form, exc)
    reviewed = not form.errors
    # Where the lead goes on: the queue page the form came from, kept through a failed try (this URL
    # answers POST only, so it must never become `next`).
    queue = reverse("variances:review_queue")
    next_url = _next_url(request, queue)
    if urlsplit(next_url).path == request.path:  # from a page rendered before that was so
        next_url = queue
    if request.htmx:
        return render(
            request,
            "variances/partials/review_item.html",
            {"variance": variance, "form": form, "reviewed": reviewed, "next": next_url},
        )
    if reviewed:
        messages.success(request, f"Reviewed: {variance.episode.patient_ref}, {variance.get_variance_type_display()}.")
        return redirect(next_url)
    return render(
        request,
        "variances/review_single.html",
        {"variance": variance, "episode": variance.episode, "form": form, "next": next_url},
        status=400,
    )
