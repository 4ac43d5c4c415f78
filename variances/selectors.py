"""Reads of episodes and variances, scoped to who is asking.

Privacy (DOMAIN.md section 1, "individual figures are private by default"):
- a clinician sees the episodes they are responsible for and every episode of
  their unit's subtree;
- a clinical lead sees their team's (units where they lead, with subtrees);
- an administrator sees the units where they administer (the whole trust);
- managers and finance see no individual episode at all: no patient reference,
  no clinician name, no free-text rationale. Their lens is the aggregate reports
  (costing), with small cells suppressed.
Every view and API endpoint goes through ``episodes_for``/``variances_for`` so
an out-of-scope object is simply not found (404), never "forbidden".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import AuditEvent, Membership
from accounts.permissions import EPISODE_ROLES, has_role, unit_ids_for
from config.pagination import capped_count
from pathways.models import Step

from .detection import EventFact, StepSpec, addition_key, first_events, omission_due, window
from .models import Episode, EventQuantity, ReasonCode, StepEvent, Variance
from .reasons import category_labels
from .services import OUTCOMES_AUDIT_ACTION

Role = Membership.Role

INBOX_PREVIEW = 10


def _episode_scope(user, prefix: str = "") -> Q:
    if not has_role(user, *EPISODE_ROLES):
        return Q(pk__in=[])
    return Q(**{f"{prefix}responsible_clinician": user}) | Q(
        **{f"{prefix}org_unit_id__in": unit_ids_for(user, *EPISODE_ROLES)}
    )


def episodes_for(user) -> QuerySet[Episode]:
    return Episode.objects.filter(_episode_scope(user))


def variances_for(user) -> QuerySet[Variance]:
    return Variance.objects.filter(_episode_scope(user, "episode__"))


def unexplained_for(user) -> QuerySet[Variance]:
    """The clinician's inbox: unexplained variances on episodes they are responsible for."""
    return Variance.objects.unexplained().for_clinician(user)


def unassigned_unexplained_for(user) -> QuerySet[Variance]:
    """Unexplained variances on episodes with no responsible clinician, in the user's units.

    Imported episodes often come without one: nobody's own inbox holds their departures,
    so everyone who may open them (the unit's clinicians and leads) sees them as shared work.
    """
    if not has_role(user, *EPISODE_ROLES):
        return Variance.objects.none()
    return Variance.objects.unexplained().filter(
        episode__responsible_clinician__isnull=True, episode__org_unit_id__in=unit_ids_for(user, *EPISODE_ROLES)
    )


def with_open_count(episodes: QuerySet[Episode]) -> QuerySet[Episode]:
    """Each episode's number of unexplained variances, as ``open_count``.

    A correlated subquery rather than a join and GROUP BY: evaluated for the rows of
    the page only, instead of grouping every variance in scope first (1.1 s -> ms at
    500,000 episodes, bench/pages.py).
    """
    open_variances = (
        Variance.objects.filter(episode=OuterRef("pk"), status=Variance.Status.UNEXPLAINED)
        .order_by()
        .values("episode")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return episodes.annotate(open_count=Coalesce(Subquery(open_variances, output_field=IntegerField()), 0))


# The review queue and its count on the home page stop counting here ("more than 1,000").
REVIEW_COUNT_CAP = 1000


def review_queue_for(user) -> QuerySet[Variance]:
    """Documented variances of the lead's team, those that must be reviewed first.

    Not those the lead documented (wrote the current revision of): another lead reviews
    them (``services.variance_review`` refuses), so the queue holds only what this lead can act on.
    """
    units = unit_ids_for(user, Role.CLINICAL_LEAD)
    return (
        Variance.objects.awaiting_review()
        .for_units(units)
        .not_documented_by(user)
        .select_related(
            "episode__version__pathway",
            "episode__responsible_clinician",
            "step",
            "reason",
            "recorded_by",
            "detection__event",
        )
        .order_by("-review_required", "documented_at", "id")
    )


def can_change_variance(user, variance: Variance) -> bool:
    """Amend or withdraw: whoever recorded it, the responsible clinician, or a lead/admin over the unit."""
    if user.pk in (variance.recorded_by_id, variance.episode.responsible_clinician_id):
        return True
    return variance.episode.org_unit_id in unit_ids_for(user, Role.CLINICAL_LEAD, Role.ADMIN)


def ranked_reasons(*, pathway_id: int, step_code: str | None, variance_type: str | None = None) -> list[ReasonCode]:
    """Usable reasons, most used first for this step (by code, across the pathway's versions).

    One query: the usage count is annotated. Without a step, usage for the
    variance type across the pathway ranks them instead.
    """
    usage = Q(
        variances__episode__version__pathway_id=pathway_id,
        variances__status__in=[Variance.Status.DOCUMENTED, Variance.Status.REVIEWED],
    )
    if step_code:
        usage &= Q(variances__step__code=step_code)
    elif variance_type:
        usage &= Q(variances__variance_type=variance_type)
    return list(
        ReasonCode.objects.filter(retired=False)
        .filter(Q(pathway__isnull=True) | Q(pathway_id=pathway_id))
        .annotate(uses=Count("variances", filter=usage))
        .order_by("-uses", "category", "display")
    )


def reason_groups(
    reasons: list[ReasonCode], *, ranked_label: str = "", top: int = 5
) -> list[tuple[str, list[ReasonCode]]]:
    """Option groups for the reason select, each reason in one group only.

    The most used come first, under ``ranked_label``, which says what they are most used for
    (``ranked_reasons`` ranks by the step when it knows one); without a label there is no ranked
    group, since "most used" for nothing the user can see would mislead. The rest follow: this
    pathway's local reasons, then the catalogue by category. A reason listed twice is read twice by
    a screen reader and found twice by type-ahead, so the ranked ones are left out of the others.
    """
    labels = category_labels()
    used = [r for r in reasons if getattr(r, "uses", 0)][:top] if ranked_label else []
    groups: list[tuple[str, list[ReasonCode]]] = []
    if used:
        groups.append((ranked_label, used))
    listed = {r.pk for r in used}
    by_category: dict[str, list[ReasonCode]] = {}
    for reason in sorted(reasons, key=lambda r: (r.pathway_id is None, r.category, r.display)):
        if reason.pk in listed:
            continue
        label = (
            "Local to this pathway" if reason.pathway_id else labels.get(reason.category, reason.category or "Other")
        )
        by_category.setdefault(label, []).append(reason)
    groups.extend(by_category.items())
    return groups


def home_panel(user) -> dict:
    if not has_role(user, *EPISODE_ROLES):
        return {}
    inbox = list(
        unexplained_for(user)
        .select_related("episode__version__pathway", "step", "detection__event")
        .order_by("occurred_at", "id")[:INBOX_PREVIEW]
    )
    panel = {
        "my_unexplained": unexplained_for(user).count(),
        "unassigned_unexplained": unassigned_unexplained_for(user).count(),
        "my_inbox": inbox,
        "my_active_episodes": Episode.objects.active().filter(responsible_clinician=user).count(),
    }
    if has_role(user, Role.CLINICAL_LEAD):
        panel["review_waiting"], panel["review_waiting_more"] = capped_count(review_queue_for(user), REVIEW_COUNT_CAP)
    return panel


# --- outcomes after discharge --------------------------------------------------------

OUTCOME_LABELS = {"readmitted_30d": "Readmitted within 30 days", "complication": "Complication"}


def outcome_text(value: bool | None) -> str:
    return {True: "Yes", False: "No"}.get(value, "Not known")


def outcome_history(episode: Episode) -> list[dict]:
    """Every change to the episode's outcomes since it ended, oldest first: when, who, each outcome before and after.

    Read from the audit trail, where ``services.episode_record_outcomes`` writes each change with
    its before and after: one query, however many changes.
    """
    events = (
        AuditEvent.objects.filter(
            object_type=Episode._meta.label_lower, object_id=str(episode.pk), action=OUTCOMES_AUDIT_ACTION
        )
        .select_related("actor")
        .order_by("id")
    )
    history = []
    for event in events:
        before, after = event.detail.get("before", {}), event.detail.get("after", {})
        history.append(
            {
                "at": event.at,
                "by": event.actor or event.actor_name or "CommonPath",
                "changes": [
                    {"label": label, "before": outcome_text(before.get(name)), "after": outcome_text(after[name])}
                    for name, label in OUTCOME_LABELS.items()
                    if name in after
                ],
            }
        )
    return history


# --- the episode timeline ------------------------------------------------------------


@dataclass
class TimelineRow:
    """One line of the episode page: a planned step, or an activity not on the pathway."""

    state: str  # on-time, late, early, missing, due, not-done, done, unplanned
    label: str
    step: Step | None = None
    event: StepEvent | None = None
    due_from: datetime | None = None
    due_by: datetime | None = None
    occurrences: int = 0  # events on the step, the first included
    variances: list[Variance] = field(default_factory=list)
    # The row's events that carry actual quantities (quantities prefetched with their resources).
    quantity_events: list[StepEvent] = field(default_factory=list)

    @property
    def beyond_plan(self) -> int:
        """Events past the step's planned count (a return to theatre, a third of two planned sessions)."""
        if self.step is None or self.step.per_day:
            return 0
        return max(self.occurrences - self.step.planned_occurrences, 0)

    @property
    def sort_at(self):
        return self.event.occurred_at if self.event else (self.due_by or self.due_from)

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]


STATE_LABELS = {
    "on-time": "Done on time",
    "late": "Done late",
    "early": "Done early",
    "done": "Done",
    "missing": "Missing",
    "due": "Not yet due",
    "not-done": "Not done (optional)",
    "unplanned": "Not on the pathway",
}


def episode_timeline(episode: Episode, *, now: datetime | None = None) -> dict:
    """The pathway's steps against what happened, in time order, with variances attached.

    Three queries: steps, events and variances (with their reasons). Sequence
    departures are shown through their variances, as detection found them.
    """
    now = now or timezone.now()
    steps = list(Step.objects.filter(version_id=episode.version_id).select_related("stage"))
    events = list(
        StepEvent.objects.filter(episode=episode)
        .select_related("step", "recorded_by")
        .prefetch_related(Prefetch("quantities", EventQuantity.objects.select_related("resource").order_by("id")))
        .order_by("occurred_at", "id")
    )
    variances = list(
        Variance.objects.filter(episode=episode)
        .select_related("reason", "step", "resource", "recorded_by", "reviewed_by", "detection__event")
        .order_by("occurred_at", "id")
    )
    specs = [
        StepSpec(
            id=s.id,
            code=s.code,
            anchor_id=s.anchor_id,
            window_min=s.window_min_minutes,
            window_max=s.window_max_minutes,
            mandatory=s.mandatory,
            per_day=s.per_day,
            criticality=s.criticality,
        )
        for s in steps
    ]
    facts = [EventFact(e.id, e.step_id, e.activity, e.occurred_at) for e in events]
    first = first_events(specs, facts)
    events_by_id = {e.id: e for e in events}
    occurrences: dict[int, int] = {}
    with_quantities: dict[int, list[StepEvent]] = {}
    for e in events:
        if e.step_id:
            occurrences[e.step_id] = occurrences.get(e.step_id, 0) + 1
            if e.quantities.all():
                with_quantities.setdefault(e.step_id, []).append(e)

    by_step: dict[int, list[Variance]] = {}
    additions: dict[str, list[Variance]] = {}
    other: list[Variance] = []
    for v in variances:
        if v.step_id:
            by_step.setdefault(v.step_id, []).append(v)
        elif v.detection_id and v.detection.key.startswith("addition:"):
            additions.setdefault(v.detection.key, []).append(v)
        else:
            other.append(v)

    rows: list[TimelineRow] = []
    for spec, step in zip(specs, steps, strict=True):
        due_from, due_by = window(spec, started_at=episode.started_at, first=first)
        fact = first.get(spec.id)
        if fact is None:
            if omission_due(spec, due_by=due_by, ended_at=episode.ended_at, status=episode.status, now=now):
                state = "missing"
            elif not spec.mandatory:
                state = "not-done"
            else:
                state = "due"
            event = None
        else:
            event = events_by_id[fact.id]
            if spec.per_day or (due_from is None and due_by is None):
                state = "done"
            elif due_by is not None and fact.occurred_at > due_by:
                state = "late"
            elif due_from is not None and fact.occurred_at < due_from:
                state = "early"
            else:
                state = "on-time"
        rows.append(
            TimelineRow(
                state=state,
                label=step.name,
                step=step,
                event=event,
                due_from=due_from,
                due_by=due_by,
                occurrences=occurrences.get(spec.id, 0),
                variances=by_step.get(spec.id, []),
                quantity_events=with_quantities.get(spec.id, []),
            )
        )
    seen_additions: set[str] = set()
    for e in events:
        if e.step_id is None:
            key = addition_key(e.activity)
            first_of_kind = key not in seen_additions
            seen_additions.add(key)
            rows.append(
                TimelineRow(
                    state="unplanned",
                    label=e.activity,
                    event=e,
                    variances=additions.get(key, []) if first_of_kind else [],
                    quantity_events=[e] if e.quantities.all() else [],
                )
            )
    far = datetime.max.replace(tzinfo=UTC)
    rows.sort(key=lambda r: (r.sort_at or far, r.step.order if r.step else 0))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    summary = [(state, label, counts[state]) for state, label in STATE_LABELS.items() if counts.get(state)]
    return {"rows": rows, "other_variances": other, "state_counts": summary, "variances": variances}
