"""Every write to episodes, events and variances. Browser, API and import share these.

Each service is keyword-only, validates with ``full_clean()``, runs in one
transaction with its audit event, and queues side effects (detection) only once
the transaction has committed.

Variances are amended, never overwritten: every change appends a
``VarianceRevision`` holding the complete state after the change (``snapshot``),
so any earlier state can be read back exactly (``variance_state``). Nothing here
deletes a row; a variance is withdrawn with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Membership, OrgUnit
from accounts.privacy import refuse_patient_identifiers
from accounts.queueing import enqueue_on_commit
from pathways.models import Pathway, PathwayVersion, Resource, Step

from .models import (
    CRITICAL_STEP_CRITICALITY,
    Episode,
    EventQuantity,
    ReasonCode,
    StepEvent,
    Variance,
    VarianceRevision,
    next_updated_at,
    next_updated_at_expression,
)

# A claimed time may run a little ahead of the server clock (device clocks drift).
CLOCK_SKEW = timedelta(minutes=5)
# The most people an event's quantity may count (the API's limit too).
MAX_HEADCOUNT = 100

# Fields a clinician may change by amendment. Status, review and withdrawal have
# their own services, so that each transition is named in the history.
AMENDABLE_FIELDS = (
    "variance_type",
    "cause",
    "reason",
    "valence",
    "level",
    "rationale",
    "action_taken",
    "occurred_at",
    "step",
    "resource",
)

# Everything a revision snapshot holds: the variance's full state after a change.
SNAPSHOT_FIELDS = (
    "episode_id",
    "step_id",
    "resource_id",
    "variance_type",
    "cause",
    "reason_id",
    "valence",
    "level",
    "justified",
    "avoidable",
    "rationale",
    "action_taken",
    "occurred_at",
    "recorded_at",
    "recorded_by_id",
    "documented_at",
    "status",
    "detection_id",
    "reviewed_by_id",
    "reviewed_at",
    "review_comment",
    "withdrawn_reason",
    "review_required",
    "revision",
)
SNAPSHOT_DATETIME_FIELDS = frozenset({"occurred_at", "recorded_at", "documented_at", "reviewed_at"})

# What clinicians type about a variance, screened for patient identifiers as it is written (the
# fields' validator, accounts.privacy). A change is judged on the text it writes: text stored
# before the screening existed is corrected by amending it, and does not block a review or a
# withdrawal of the variance.
VARIANCE_TEXT_FIELDS = ("rationale", "action_taken", "review_comment", "withdrawn_reason")

# Departures that only make sense against a planned step.
STEP_TYPES = (
    Variance.Type.OMISSION,
    Variance.Type.DELAY,
    Variance.Type.EARLY,
    Variance.Type.SEQUENCE,
    Variance.Type.SUBSTITUTION,
)


# A clinical lead does not review their own documentation (clinical governance: a second pair of eyes).
SELF_REVIEW = "You documented this variance; another clinical lead reviews it."


class StaleRevisionError(Exception):
    """The variance (or episode: ``record``) changed since the caller read it (the API answers 412)."""

    def __init__(self, *, expected: int, current: int, record: str = "variance"):
        self.expected = expected
        self.current = current
        super().__init__(
            f"This {record} was changed by someone else (now revision {current}, you edited revision {expected}). "
            "Reload it and make your change again."
        )


class EpisodeAlreadyActive(ValidationError):
    """The patient already has an active episode on this pathway (the API answers 409, a form shows it)."""

    def __init__(self, existing: Episode, pathway: Pathway):
        self.existing = existing
        self.detail = (
            f"{existing.patient_ref} already has an active episode on {pathway.code} (episode {existing.pk}). "
            "Record on that one, or complete or exit it before starting another."
        )
        super().__init__({"patient_ref": self.detail})


# --- helpers -------------------------------------------------------------------------


def variance_snapshot(variance: Variance) -> dict[str, Any]:
    """The variance's complete state as JSON-safe values (what a revision stores)."""
    snapshot = {}
    for name in SNAPSHOT_FIELDS:
        value = getattr(variance, name)
        if name in SNAPSHOT_DATETIME_FIELDS and value is not None:
            value = value.isoformat()
        snapshot[name] = value
    return snapshot


def variance_state(revision: VarianceRevision) -> dict[str, Any]:
    """A revision's snapshot with datetimes parsed back: the variance as it was then."""
    state = dict(revision.snapshot)
    for name in SNAPSHOT_DATETIME_FIELDS:
        if state.get(name):
            state[name] = datetime.fromisoformat(state[name])
    return state


def requires_review(*, variance_type: str, step: Step | None) -> bool:
    """Exits and omissions of critical steps must be adjudicated by a clinical lead."""
    if variance_type == Variance.Type.EXIT:
        return True
    return (
        variance_type == Variance.Type.OMISSION and step is not None and step.criticality >= CRITICAL_STEP_CRITICALITY
    )


def _append_revision(variance: Variance, *, actor, reason: str, at: datetime | None = None) -> VarianceRevision:
    revision = VarianceRevision(
        variance=variance,
        number=variance.revision,
        changed_by=_person(actor),
        changed_at=at or timezone.now(),
        reason=reason,
        snapshot=variance_snapshot(variance),
    )
    revision.save(force_insert=True)
    return revision


def _person(actor):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _touch_episode(episode_id: int, *, at: datetime | None = None) -> None:
    """Bump the episode's change marker (ETags, incremental report refresh)."""
    Episode.objects.filter(pk=episode_id).update(
        updated_at=next_updated_at_expression(at or timezone.now()), row_version=F("row_version") + 1
    )


def detection_queue(episode_id: int) -> None:
    """Evaluate the episode against its pathway once the current transaction commits."""
    from .tasks import detect_episode

    # Robust: with the broker down the write still succeeds; the beat job detects it later.
    enqueue_on_commit(detect_episode, episode_id)


def _check_step(episode: Episode, step: Step | None, field: str = "step") -> None:
    if step is not None and step.version_id != episode.version_id:
        raise ValidationError(
            {field: f"Step {step.code} is not on this episode's pathway version ({episode.version})."}
        )


def _check_reason(episode: Episode, reason: ReasonCode | None, field: str = "reason") -> None:
    if reason is None:
        raise ValidationError({field: "Choose a reason."})
    if reason.retired:
        raise ValidationError({field: f"The reason '{reason.display}' has been retired; choose a current one."})
    if reason.pathway_id is not None and reason.pathway_id != episode.version.pathway_id:
        raise ValidationError({field: f"The reason '{reason.display}' belongs to another pathway."})


def _check_not_future(value: datetime | None, field: str) -> None:
    if value is not None and value > timezone.now() + CLOCK_SKEW:
        raise ValidationError({field: "This time is in the future."})


def _check_within_episode(episode: Episode, occurred_at: datetime | None) -> None:
    """An event or a departure happens during its episode: before its start or after its end it belongs to another.

    An ended episode still takes events and variances within its stay (documentation entered late).
    """
    if occurred_at is None:
        return
    if occurred_at < episode.started_at:
        start = timezone.localtime(episode.started_at).strftime("%-d %b %Y %H:%M")
        raise ValidationError({"occurred_at": f"This is before the episode started ({start})."})
    if episode.ended_at is not None and occurred_at > episode.ended_at:
        end = timezone.localtime(episode.ended_at).strftime("%-d %b %Y %H:%M")
        raise ValidationError({"occurred_at": f"This is after the episode ended ({end})."})


def _texts_not_written(*written: str) -> list[str]:
    """The free-text fields of a variance that a change leaves as they were: ``full_clean`` passes over them."""
    return [name for name in VARIANCE_TEXT_FIELDS if name not in written]


def _gather(errors: dict[str, list], *checks) -> None:
    """Run every check, adding each problem it names to ``errors`` (by field) instead of stopping at the first.

    The ``*_check`` functions below are built from it, so that a form shows every problem in one round.
    """
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            exc.update_error_dict(errors)


def _lock_variance(variance: Variance) -> Variance:
    """Re-read the variance under a row lock so that concurrent changes serialise."""
    return (
        Variance.objects.select_for_update(of=("self",)).select_related("episode__version", "step").get(pk=variance.pk)
    )


# --- episodes --------------------------------------------------------------------------


@transaction.atomic
def episode_start(
    *,
    pathway_version: PathwayVersion | None = None,
    pathway: Pathway | None = None,
    patient_ref: str,
    org_unit: OrgUnit,
    responsible_clinician=None,
    started_at: datetime,
    actor,
) -> Episode:
    """Start a patient's episode on a pathway: the version in force on its start date unless one is given."""
    if pathway_version is None:
        if pathway is None:
            raise ValidationError({"pathway": "Choose a pathway."})
        pathway_version = PathwayVersion.objects.in_force(pathway, timezone.localdate(started_at))
        if pathway_version is None:
            raise ValidationError({"pathway": f"{pathway.code} has no published version to start an episode on."})
    elif pathway is not None and pathway_version.pathway_id != pathway.pk:
        raise ValidationError({"pathway_version": "This version belongs to another pathway."})
    if pathway_version.status == PathwayVersion.Status.DRAFT:
        raise ValidationError({"pathway_version": "Episodes follow published versions, not drafts."})
    _check_not_future(started_at, "started_at")
    patient_ref = (patient_ref or "").strip()
    # One active episode per patient and pathway. A lock on (pathway, patient) serialises starts of
    # the same patient, so two requests at once (two users, a retried POST without Idempotency-Key)
    # cannot both pass the check, while other patients' starts run on. The import creates its
    # episodes in bulk and does not come this way.
    _lock_patient_on_pathway(pathway_version.pathway_id, patient_ref)
    pathway = pathway_version.pathway
    existing = (
        Episode.objects.active()
        .filter(patient_ref=patient_ref, version__pathway_id=pathway.pk)
        .order_by("started_at", "id")
        .first()
    )
    if existing is not None:
        raise EpisodeAlreadyActive(existing, pathway)
    episode = Episode(
        patient_ref=patient_ref,
        version=pathway_version,
        org_unit=org_unit,
        responsible_clinician=responsible_clinician,
        started_at=started_at,
    )
    episode.full_clean()
    episode.save()
    audit_record(
        action="episode.start",
        actor=actor,
        obj=episode,
        episode_ref=episode.patient_ref,
        detail={"version": pathway_version.pk, "org_unit": org_unit.code},
    )
    detection_queue(episode.pk)
    return episode


_EPISODE_START_LOCK_CLASS = 0x455053  # "EPS": advisory-lock namespace of episode starts


def _lock_patient_on_pathway(pathway_id: int, patient_ref: str) -> None:
    """Until the transaction ends, on PostgreSQL (SQLite runs one writer at a time anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                [_EPISODE_START_LOCK_CLASS, f"{pathway_id}:{patient_ref}"],
            )


def _lock_active(episode: Episode, expected_revision: int | None = None) -> Episode:
    """Re-read the episode under a row lock; only an active episode is completed or exited.

    ``expected_revision`` (the ``row_version`` the caller read: the API's If-Match) is compared
    under the lock, so a change made since the caller's read is not ended over unseen.
    """
    episode = Episode.objects.select_for_update(of=("self",)).select_related("version").get(pk=episode.pk)
    if expected_revision is not None and expected_revision != episode.row_version:
        raise StaleRevisionError(expected=expected_revision, current=episode.row_version, record="episode")
    if episode.status != Episode.Status.ACTIVE:
        raise ValidationError(f"This episode is already {episode.get_status_display().lower()}.")
    return episode


def episode_end_check(*, episode: Episode, ended_at: datetime | None) -> None:
    """Raise one ValidationError naming every problem with ending the episode at ``ended_at``.

    ``episode_close`` runs it (``episode_exit`` through ``episode_exit_check``), and so does the
    browser form while it checks its own fields, so that every problem shows in one round.
    """
    errors: dict[str, list] = {}
    _gather(errors, lambda: _check_not_future(ended_at, "ended_at"))
    if ended_at is not None and ended_at < episode.started_at:
        errors.setdefault("ended_at", []).append("The end cannot be before the start of the episode.")
    elif ended_at is not None:
        # Every event falls within its episode: an end before one already recorded would leave it outside.
        last = StepEvent.objects.filter(episode_id=episode.pk, occurred_at__gt=ended_at).order_by("-occurred_at")
        last = last.select_related("step").first()
        if last is not None:
            what = last.step.name if last.step_id else last.activity
            at = timezone.localtime(last.occurred_at).strftime("%-d %b %Y %H:%M")
            errors.setdefault("ended_at", []).append(
                f"{what} is recorded at {at}, after this end: the episode ends at or after its last event."
            )
    if errors:
        raise ValidationError(errors)


def episode_exit_check(
    *, episode: Episode, ended_at: datetime | None, reason: str | None, reason_code: ReasonCode | None = None
) -> None:
    """Raise one ValidationError naming every problem with taking the patient off the pathway.

    ``episode_exit`` runs it, and so does the browser form while it checks its own fields.
    """
    errors: dict[str, list] = {}
    if not (reason or "").strip():
        errors["reason"] = ["Say why the patient left the pathway."]
    checks = [
        # Stored as the episode's exit reason and the exit variance's rationale.
        lambda: refuse_patient_identifiers(reason=reason),
        lambda: episode_end_check(episode=episode, ended_at=ended_at),
    ]
    if reason_code is not None:
        checks.append(lambda: _check_reason(episode, reason_code, "reason_code"))
    _gather(errors, *checks)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def episode_close(
    *,
    episode: Episode,
    ended_at: datetime,
    discharge_destination: str = "",
    readmitted_30d: bool | None = None,
    complication: bool | None = None,
    actor,
    expected_revision: int | None = None,
) -> Episode:
    """Complete an episode (discharge) with its outcomes; omissions are then detected."""
    episode = _lock_active(episode, expected_revision)
    episode_end_check(episode=episode, ended_at=ended_at)
    episode.status = Episode.Status.COMPLETED
    episode.ended_at = ended_at
    episode.discharge_destination = discharge_destination.strip()
    episode.readmitted_30d = readmitted_30d
    episode.complication = complication
    episode.updated_at = next_updated_at(episode.updated_at, timezone.now())
    episode.row_version += 1
    episode.full_clean()
    episode.save()
    audit_record(
        action="episode.close",
        actor=actor,
        obj=episode,
        episode_ref=episode.patient_ref,
        detail={
            "ended_at": ended_at.isoformat(),
            "discharge_destination": episode.discharge_destination,
            "readmitted_30d": episode.readmitted_30d,
            "complication": episode.complication,
        },
    )
    detection_queue(episode.pk)
    return episode


@transaction.atomic
def episode_exit(
    *,
    episode: Episode,
    ended_at: datetime,
    reason: str,
    actor,
    reason_code: ReasonCode | None = None,
    cause: str = "",
    expected_revision: int | None = None,
) -> Episode:
    """Take the patient off the pathway. Records an ``exit`` variance that a lead must review.

    With a coded reason (and cause) the exit variance is documented at once;
    without one it lands unexplained in the clinician's inbox, the free-text
    reason kept as its rationale.
    """
    reason = (reason or "").strip()
    episode = _lock_active(episode, expected_revision)
    episode_exit_check(episode=episode, ended_at=ended_at, reason=reason, reason_code=reason_code)
    episode.status = Episode.Status.EXITED
    episode.ended_at = ended_at
    episode.exit_reason = reason
    episode.updated_at = next_updated_at(episode.updated_at, timezone.now())
    episode.row_version += 1
    episode.full_clean()
    episode.save()
    now = timezone.now()
    documented = reason_code is not None
    variance = Variance(
        episode=episode,
        variance_type=Variance.Type.EXIT,
        cause=cause or (reason_code.default_cause if reason_code else ""),
        reason=reason_code,
        valence=Variance.Valence.NEUTRAL if documented else "",
        level=Variance.Level.PROCESS,
        rationale=reason,
        occurred_at=ended_at,
        recorded_at=now,
        recorded_by=_person(actor),
        documented_at=now if documented else None,
        status=Variance.Status.DOCUMENTED if documented else Variance.Status.UNEXPLAINED,
        review_required=True,
    )
    variance.full_clean()
    variance.save()
    _append_revision(variance, actor=actor, reason="episode exited", at=now)
    audit_record(
        action="episode.exit",
        actor=actor,
        obj=episode,
        episode_ref=episode.patient_ref,
        detail={"ended_at": ended_at.isoformat(), "variance": variance.pk},
    )
    detection_queue(episode.pk)
    return episode


class _Keep(Enum):
    KEEP = "keep"


# The default of an outcome not given to ``episode_record_outcomes``: it stays as it is. (None cannot
# say that: it is a value, "not known".)
KEEP = _Keep.KEEP
OUTCOME_FIELDS = ("readmitted_30d", "complication")
OUTCOMES_AUDIT_ACTION = "episode.outcomes"
OUTCOMES_OF_ACTIVE = (
    "This episode is still active: complete it (or take the patient off the pathway) first. "
    "Its outcomes are recorded when it ends, and can be changed here afterwards."
)


@transaction.atomic
def episode_record_outcomes(
    *,
    episode: Episode,
    readmitted_30d: bool | None | _Keep = KEEP,
    complication: bool | None | _Keep = KEEP,
    actor,
    expected_revision: int | None = None,
) -> Episode:
    """Record or correct the outcomes of a completed or exited episode, after discharge.

    A readmission within 30 days is by definition known only after discharge, and complications
    are often coded later: the reports' readmission figures depend on this. Only the outcomes
    given change; None records "not known". A correction (a readmission recorded against the
    wrong patient: yes back to no, or to not known) is allowed, and audited with its before and
    after like any change: nothing is silently changed.

    Values already recorded change nothing: no audit event, no new revision.
    ``episode.outcomes_changed`` maps each outcome that changed to its new value. ``expected_revision``
    (the episode's ``row_version`` the caller read; the API's If-Match) is compared under the row
    lock: a change to an episode the caller has not seen is refused with ``StaleRevisionError``.
    """
    episode = Episode.objects.select_for_update(of=("self",)).get(pk=episode.pk)
    if expected_revision is not None and expected_revision != episode.row_version:
        raise StaleRevisionError(expected=expected_revision, current=episode.row_version, record="episode")
    if episode.status == Episode.Status.ACTIVE:
        raise ValidationError(OUTCOMES_OF_ACTIVE)
    given = {"readmitted_30d": readmitted_30d, "complication": complication}
    given = {name: value for name, value in given.items() if value is not KEEP}
    wrong = {
        name: "Give yes, no or not known (None)."
        for name, value in given.items()
        if not (value is None or isinstance(value, bool))  # not `in (True, False, None)`: 1 == True
    }
    if wrong:
        raise ValidationError(wrong)
    changed = {name: value for name, value in given.items() if getattr(episode, name) is not value}
    episode.outcomes_changed = changed
    if not changed:
        return episode
    before = {name: getattr(episode, name) for name in changed}
    for name, value in changed.items():
        setattr(episode, name, value)
    # Strictly after the episode's last change, whatever the clock says (another server's, a step back):
    # report summaries count as stale only when computed from an earlier ``updated_at``
    # (costing/summaries.py), and one that missed this change would keep the old readmission figure.
    episode.updated_at = next_updated_at(episode.updated_at, timezone.now())
    episode.row_version += 1
    # No full_clean: only these fields are written, each checked above, and re-judging the rest of the
    # record (a reference imported under earlier rules) must not stop a readmission being recorded.
    episode.save(update_fields=[*changed, "updated_at", "row_version"])
    audit_record(
        action=OUTCOMES_AUDIT_ACTION,
        actor=actor,
        obj=episode,
        episode_ref=episode.patient_ref,
        detail={"before": before, "after": changed, "row_version": episode.row_version},
    )
    return episode


# --- events ----------------------------------------------------------------------------


def _resolve_resource(value) -> Resource:
    if isinstance(value, Resource):
        return value
    resource = Resource.objects.filter(code=value).first() if isinstance(value, str) else None
    if resource is None:
        raise ValidationError({"quantities": f"Unknown resource {value!r}."})
    return resource


def event_record_check(
    *, episode: Episode, step: Step | None, activity: str | None, occurred_at: datetime | None
) -> None:
    """Raise one ValidationError naming every problem with an event to record, not just the first.

    ``event_record`` runs it, and so does the browser form while it checks its own fields.
    """
    errors: dict[str, list] = {}
    _gather(
        errors,
        lambda: _check_step(episode, step),
        lambda: _check_not_future(occurred_at, "occurred_at"),
        lambda: _check_within_episode(episode, occurred_at),
    )
    if step is None and not (activity or "").strip():
        errors.setdefault("step", []).append(
            "Choose the pathway step, or name the activity if it is not on the pathway."
        )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def event_record(
    *,
    episode: Episode,
    step: Step | None = None,
    activity: str = "",
    occurred_at: datetime,
    performed_by: str = "",
    source: str,
    external_id: str = "",
    quantities: Iterable[Mapping[str, Any]] = (),
    actor,
    detect: bool = True,
) -> StepEvent:
    """Record that a step was done (or an activity off the pathway happened).

    Idempotent on its external id (``_event_sent_as``): sending the same event again under it
    returns the event already stored (``event.created`` is False); sending
    something else under it is refused (``_existing_event``).
    Detection runs after commit; a caller recording many events of one episode in
    one transaction passes ``detect=False`` and calls ``detection_queue`` once.
    """
    external_id = (external_id or "").strip()
    sent = {"step": step, "activity": activity, "occurred_at": occurred_at, "performed_by": performed_by}
    if external_id:
        existing = _event_sent_as(source, external_id, actor)
        if existing is not None:
            return _existing_event(existing, episode, sent=sent, quantities=quantities)
    event_record_check(episode=episode, step=step, activity=activity, occurred_at=occurred_at)
    event = StepEvent(
        episode=episode,
        step=step,
        activity=(activity or "").strip(),
        occurred_at=occurred_at,
        recorded_by=_person(actor),
        performed_by=(performed_by or "").strip(),
        source=source,
        external_id=external_id,
    )
    # Episode and step are instances already checked above; the external id's uniqueness is
    # the insert's to decide (a race is caught below): no look-ups per event for either.
    event.full_clean(exclude=["episode", "step", "recorded_by"], validate_unique=False, validate_constraints=False)
    rows = _quantity_rows(quantities)
    if len({row.resource.pk for row in rows}) != len(rows):
        raise ValidationError({"quantities": "Give each resource once."})
    _check_quantity_rows(rows)
    try:
        with transaction.atomic():
            event.save()
    except IntegrityError:
        # A concurrent request stored the same external id first: it wins.
        if external_id:
            existing = _event_sent_as(source, external_id, actor)
            if existing is not None:
                return _existing_event(existing, episode, sent=sent, quantities=quantities)
        raise
    for row in rows:
        row.event = event  # each row checked above, before anything was written
    EventQuantity.objects.bulk_create(rows)
    _cache_related(event, "quantities", rows)
    _touch_episode(episode.pk)
    audit_record(
        action="event.record",
        actor=actor,
        obj=event,
        episode_ref=episode.patient_ref,
        detail={"step": step.code if step else None, "activity": event.activity, "source": source},
    )
    if detect:
        detection_queue(episode.pk)
    event.created = True
    return event


def _event_sent_as(source: str, external_id: str, actor) -> StepEvent | None:
    """The event already stored under this external id, where ids are unique.

    An API client's ids are its own system's (unique per sending account, so two feeds may
    both number their cases from 1); any other source's ids are unique within the source.
    """
    events = StepEvent.objects.filter(source=source, external_id=external_id)
    if source == StepEvent.Source.API:
        events = events.filter(recorded_by=_person(actor))
    return events.first()


def _cache_related(instance, name: str, rows: list) -> None:
    """Give ``instance.<name>.all()`` the rows just written, as a prefetch would: no re-read."""
    queryset = getattr(instance, name).get_queryset()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    instance._prefetched_objects_cache = {**getattr(instance, "_prefetched_objects_cache", {}), name: queryset}


def _quantity_rows(quantities: Iterable[Mapping[str, Any]]) -> list[EventQuantity]:
    """An event's quantities as sent (resource, quantity, headcount, unit cost), not yet saved."""
    return [
        EventQuantity(
            resource=_resolve_resource(item.get("resource")),
            quantity=Decimal(str(item.get("quantity"))),
            headcount=item.get("headcount", 1) or 1,
            unit_cost=None if item.get("unit_cost") in (None, "") else Decimal(str(item["unit_cost"])),
        )
        for item in quantities
    ]


def event_quantity_check(
    *, resource: Resource | None, quantity: Decimal | None, headcount: int | None, unit_cost: Decimal | None
) -> None:
    """Raise one ValidationError naming every problem with one actual quantity of an event.

    ``event_record`` runs it on each quantity it is given, and so does the browser form on each of
    its quantity rows, so both say the same. A value that is None is not checked (a form field
    that could not read it says so itself).
    """
    errors: dict[str, list] = {}
    if quantity is not None and quantity < 0:
        errors["quantity"] = ["A quantity cannot be negative."]
    if headcount is not None and not 1 <= headcount <= MAX_HEADCOUNT:
        errors["headcount"] = [f"Give a headcount from 1 to {MAX_HEADCOUNT}."]
    if unit_cost is not None and unit_cost < 0:
        errors["unit_cost"] = ["A price cannot be negative."]
    row = EventQuantity(resource=resource, quantity=quantity, headcount=headcount or 1, unit_cost=unit_cost)
    unchecked = {name for name, value in (("quantity", quantity), ("headcount", headcount)) if value is None}
    try:
        # Digits and decimal places; the event is not written yet, the resource is an instance in hand.
        row.full_clean(
            exclude=["event", "resource", *errors, *unchecked], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def _check_quantity_rows(rows: list[EventQuantity]) -> None:
    """Every problem with an event's quantities, each named by its resource, before anything is written."""
    problems = []
    for row in rows:
        try:
            event_quantity_check(
                resource=row.resource, quantity=row.quantity, headcount=row.headcount, unit_cost=row.unit_cost
            )
        except ValidationError as exc:
            problems += [f"{row.resource.code}: {message}" for message in exc.messages]
    if problems:
        raise ValidationError({"quantities": problems})


def _existing_event(existing: StepEvent, episode: Episode, *, sent: dict, quantities) -> StepEvent:
    """The event already stored under this external id, if what was sent is that event again.

    Resending is harmless; sending something else under the same id is refused, not
    ignored: a corrected time or quantity would otherwise be lost without a word, and a
    recorded event is never changed (nothing is silently changed).
    """
    if existing.episode_id != episode.pk:
        raise ValidationError({"external_id": "You already used this external id for another episode."})
    step = sent["step"]
    differs = [
        name
        for name, stored, given in (
            ("step", existing.step_id, step.pk if step is not None else None),
            ("activity", existing.activity, (sent["activity"] or "").strip()),
            ("occurred_at", existing.occurred_at, sent["occurred_at"]),
            ("performed_by", existing.performed_by, (sent["performed_by"] or "").strip()),
        )
        if stored != given
    ]

    def used(rows):
        return {(q.resource_id, q.quantity * q.headcount, q.unit_cost) for q in rows}

    if used(EventQuantity.objects.filter(event=existing)) != used(_quantity_rows(quantities)):
        differs.append("quantities")
    if differs:
        raise ValidationError(
            {
                "external_id": f"This external id was already used for event {existing.pk}, which differs in "
                f"{', '.join(differs)}. A recorded event is not changed: send it again as it was, or record "
                "the correction as an event with an external id of its own."
            }
        )
    existing.created = False
    return existing


# --- variances -------------------------------------------------------------------------


EXIT_ON_EPISODE = "Use 'Exit pathway' on the episode: it ends the episode too."
STEP_NEEDED = "Choose the pathway step this departure concerns."


def variance_record_check(
    *,
    episode: Episode,
    step: Step | None,
    variance_type: str | None,
    reason: ReasonCode | None,
    occurred_at: datetime | None,
) -> None:
    """Raise one ValidationError naming every problem with a variance to record, not just the first.

    ``variance_record`` runs it, and so does the browser form while it checks its own fields, so
    that a clinician sees every problem in one round.
    """
    errors: dict[str, list] = {}
    if variance_type == Variance.Type.EXIT:
        errors["variance_type"] = [EXIT_ON_EPISODE]
    if step is None and variance_type in STEP_TYPES:
        errors["step"] = [STEP_NEEDED]
    _gather(
        errors,
        lambda: _check_step(episode, step),
        lambda: _check_reason(episode, reason),
        lambda: _check_not_future(occurred_at, "occurred_at"),
        lambda: _check_within_episode(episode, occurred_at),
    )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def variance_record(
    *,
    episode: Episode,
    step: Step | None = None,
    variance_type: str,
    cause: str,
    reason: ReasonCode | None,
    valence: str,
    level: str = Variance.Level.PROCESS,
    rationale: str = "",
    action_taken: str = "",
    occurred_at: datetime,
    resource: Resource | None = None,
    actor,
) -> Variance:
    """A clinician documents a departure: it starts ``documented`` (revision 1)."""
    variance_record_check(
        episode=episode, step=step, variance_type=variance_type, reason=reason, occurred_at=occurred_at
    )
    now = timezone.now()
    variance = Variance(
        episode=episode,
        step=step,
        resource=resource,
        variance_type=variance_type,
        cause=cause,
        reason=reason,
        valence=valence,
        level=level or Variance.Level.PROCESS,
        rationale=(rationale or "").strip(),
        action_taken=(action_taken or "").strip(),
        occurred_at=occurred_at,
        recorded_at=now,
        recorded_by=_person(actor),
        documented_at=now,
        status=Variance.Status.DOCUMENTED,
        review_required=requires_review(variance_type=variance_type, step=step),
    )
    _require_axes(variance)
    # Related rows are instances the caller resolved in scope and checked above, and the table's
    # check constraints hold by construction (documented, with a reason); the database still
    # enforces both. Skipping their look-ups saves six round trips per variance.
    variance.full_clean(exclude=["episode", "step", "resource", "reason", "recorded_by"], validate_constraints=False)
    variance.save()
    _append_revision(variance, actor=actor, reason="recorded", at=now)
    _touch_episode(episode.pk, at=now)
    audit_record(
        action="variance.record",
        actor=actor,
        obj=variance,
        episode_ref=episode.patient_ref,
        detail={"type": variance_type, "step": step.code if step else None, "reason": reason.code},
    )
    return variance


def _require_axes(variance: Variance) -> None:
    """A documented variance states its cause and valence as well as its reason."""
    errors = {}
    if not variance.cause:
        errors["cause"] = "Choose who or what caused the departure."
    if not variance.valence:
        errors["valence"] = "Say whether the departure was positive, negative or neutral for the patient."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def variance_explain(
    *,
    variance: Variance,
    cause: str,
    reason: ReasonCode | None,
    valence: str,
    rationale: str = "",
    action_taken: str = "",
    actor,
) -> Variance:
    """Give a detected (unexplained) variance its reason: it becomes documented.

    The detection that raised it stays untouched.
    """
    variance = _lock_variance(variance)
    if variance.status != Variance.Status.UNEXPLAINED:
        raise ValidationError(
            f"This variance is already {variance.get_status_display().lower()}; amend it to change it."
        )
    _check_reason(variance.episode, reason)
    now = timezone.now()
    variance.cause = cause
    variance.reason = reason
    variance.valence = valence
    variance.rationale = (rationale or "").strip()
    variance.action_taken = (action_taken or "").strip()
    variance.status = Variance.Status.DOCUMENTED
    variance.documented_at = now
    if variance.recorded_by_id is None:
        variance.recorded_by = _person(actor)
    variance.revision += 1
    _require_axes(variance)
    variance.full_clean(exclude=_texts_not_written("rationale", "action_taken"))
    variance.save()
    _append_revision(variance, actor=actor, reason="explained", at=now)
    _touch_episode(variance.episode_id, at=now)
    audit_record(
        action="variance.explain",
        actor=actor,
        obj=variance,
        episode_ref=variance.episode.patient_ref,
        detail={"reason": reason.code, "revision": variance.revision},
    )
    return variance


def variance_amend_check(*, variance: Variance, changed: Iterable[str]) -> None:
    """Raise one ValidationError naming every problem with the variance as amended (its stored values
    with the changes applied): the rules of recording (``variance_record_check``), judged where the
    amendment touches them.

    What an amendment leaves alone stays as recorded: a reason retired since, or a detected
    omission dated at the close of a window that ran past the episode's end, does not block a
    correction of something else.
    """
    changed = set(changed)
    episode = variance.episode
    errors: dict[str, list] = {}
    if "variance_type" in changed and variance.variance_type == Variance.Type.EXIT:
        errors["variance_type"] = [EXIT_ON_EPISODE]
    if {"variance_type", "step"} & changed and variance.step is None and variance.variance_type in STEP_TYPES:
        errors["step"] = [STEP_NEEDED]
    checks = []
    if "step" in changed:
        checks.append(lambda: _check_step(episode, variance.step))
    if "reason" in changed:
        checks.append(lambda: _check_reason(episode, variance.reason))
    if "occurred_at" in changed:
        checks.append(lambda: _check_not_future(variance.occurred_at, "occurred_at"))
        checks.append(lambda: _check_within_episode(episode, variance.occurred_at))
    _gather(errors, *checks)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def variance_amend(
    *,
    variance: Variance,
    changes: dict[str, Any],
    reason: str,
    actor,
    expected_revision: int | None = None,
) -> Variance:
    """Change a documented variance: a new revision with who, when and why.

    ``expected_revision`` guards against lost updates: if the variance moved on
    since the caller read it, ``StaleRevisionError`` is raised and nothing changes.
    Amending a reviewed variance returns it to ``documented``: the lead judged the
    earlier content, which stays readable in its revision.
    """
    variance = _lock_variance(variance)
    if expected_revision is not None and expected_revision != variance.revision:
        raise StaleRevisionError(expected=expected_revision, current=variance.revision)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"amend_reason": "Say why you are changing this variance."})
    refuse_patient_identifiers(amend_reason=reason)  # kept with the revision, shown in the history
    if variance.status not in (Variance.Status.DOCUMENTED, Variance.Status.REVIEWED):
        raise ValidationError(
            f"Only documented or reviewed variances are amended; this one is {variance.get_status_display().lower()}."
        )
    unknown = set(changes) - set(AMENDABLE_FIELDS)
    if unknown:
        raise ValidationError(f"These cannot be amended: {', '.join(sorted(unknown))}.")
    changed = {}
    for name, value in changes.items():
        if isinstance(value, str):
            value = value.strip()
        if getattr(variance, name) != value:
            changed[name] = value
            setattr(variance, name, value)
    if not changed:
        raise ValidationError("Nothing changed: edit at least one field.")
    variance_amend_check(variance=variance, changed=changed)
    _require_axes(variance)
    was_reviewed = variance.status == Variance.Status.REVIEWED
    if was_reviewed:
        variance.status = Variance.Status.DOCUMENTED
        variance.justified = None
        variance.avoidable = None
        variance.reviewed_by = None
        variance.reviewed_at = None
        variance.review_comment = ""
    if {"variance_type", "step"} & set(changed):
        variance.review_required = variance.review_required or requires_review(
            variance_type=variance.variance_type, step=variance.step
        )
    variance.revision += 1
    variance.full_clean(exclude=_texts_not_written(*changed))
    variance.save()
    _append_revision(variance, actor=actor, reason=reason)
    _touch_episode(variance.episode_id)
    audit_record(
        action="variance.amend",
        actor=actor,
        obj=variance,
        episode_ref=variance.episode.patient_ref,
        detail={"fields": sorted(changed), "revision": variance.revision, "reopened_review": was_reviewed},
    )
    return variance


@transaction.atomic
def variance_withdraw(*, variance: Variance, reason: str, actor, expected_revision: int | None = None) -> Variance:
    """Withdraw a variance recorded in error. It stays, with its history, marked withdrawn.

    ``expected_revision`` (the API's If-Match) is compared under the row lock, as for an amendment:
    a withdrawal of a revision the caller never saw is refused, not applied.
    """
    variance = _lock_variance(variance)
    if expected_revision is not None and expected_revision != variance.revision:
        raise StaleRevisionError(expected=expected_revision, current=variance.revision)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"withdraw_reason": "Say why you are withdrawing this variance."})
    refuse_patient_identifiers(withdraw_reason=reason)
    if variance.status == Variance.Status.WITHDRAWN:
        raise ValidationError("This variance is already withdrawn.")
    variance.status = Variance.Status.WITHDRAWN
    variance.withdrawn_reason = reason
    variance.revision += 1
    variance.full_clean(exclude=_texts_not_written("withdrawn_reason"))
    variance.save()
    _append_revision(variance, actor=actor, reason=f"withdrawn: {reason}")
    _touch_episode(variance.episode_id)
    audit_record(
        action="variance.withdraw",
        actor=actor,
        obj=variance,
        episode_ref=variance.episode.patient_ref,
        detail={"reason": reason, "revision": variance.revision},
    )
    return variance


def can_review(user, episode: Episode) -> bool:
    """Only a clinical lead whose units include the episode's unit adjudicates its variances."""
    from accounts.permissions import unit_ids_for

    return episode.org_unit_id in unit_ids_for(user, Membership.Role.CLINICAL_LEAD)


def documented_it(user, variance: Variance) -> bool:
    """Whether ``user`` wrote the variance's current revision (recorded, explained or last amended it)."""
    return Variance.objects.filter(pk=variance.pk).documented_by(user).exists()


@transaction.atomic
def variance_review(*, variance: Variance, justified: bool, avoidable: bool, comment: str, actor) -> Variance:
    """A clinical lead adjudicates a documented variance (justified? avoidable?).

    A second pair of eyes: the lead who documented the variance as it stands (wrote its
    current revision) does not review it; another clinical lead of the unit does.
    """
    variance = _lock_variance(variance)
    if not can_review(actor, variance.episode):
        raise PermissionDenied("Only a clinical lead of this episode's unit can review its variances.")
    if variance.status != Variance.Status.DOCUMENTED:
        raise ValidationError(
            f"Only documented variances are reviewed; this one is {variance.get_status_display().lower()}."
        )
    if documented_it(actor, variance):
        raise ValidationError(SELF_REVIEW)
    comment = (comment or "").strip()
    if justified is False and not comment:
        raise ValidationError({"comment": "Say why the departure was not justified, so the team can learn from it."})
    refuse_patient_identifiers(comment=comment)
    now = timezone.now()
    variance.justified = justified
    variance.avoidable = avoidable
    variance.review_comment = comment
    variance.reviewed_by = actor
    variance.reviewed_at = now
    variance.status = Variance.Status.REVIEWED
    variance.revision += 1
    variance.full_clean(exclude=_texts_not_written("review_comment"))
    variance.save()
    _append_revision(variance, actor=actor, reason="reviewed", at=now)
    _touch_episode(variance.episode_id, at=now)
    audit_record(
        action="variance.review",
        actor=actor,
        obj=variance,
        episode_ref=variance.episode.patient_ref,
        detail={"justified": justified, "avoidable": avoidable, "revision": variance.revision},
    )
    return variance
