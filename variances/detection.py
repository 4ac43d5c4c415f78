"""Detecting departures nobody documented (DOMAIN.md section 3, "Detection rules").

``detect()`` is a pure function: a version's steps, one episode's start, end and
status, its events and "now" in; findings out. ``evaluate_episodes()`` applies it
to many episodes with a fixed number of queries and bulk inserts, creating a
``Detection`` and an *unexplained* ``Variance`` (with its revision 1) for each new
finding. Both are idempotent: a finding is identified by its key, unique per
episode, so running again creates nothing.

Rules:
- a step is satisfied by its **first** event; later events are repeats, never variances;
- a step's window is ``[anchor + min, anchor + max]`` where the anchor is the episode
  start or the first event of the anchor step (no anchor event yet: no timing judgement);
- event after the window -> **delay**; before it -> **early**;
- first event of a step before the first event of a step it must follow -> **sequence**;
- an activity not on the pathway -> **addition** (once per activity name: repeats of
  the same activity are not further variances);
- a mandatory step with no event -> **omission**, raised only once its window has
  closed (active episodes) or the episode has ended. A completed episode owes every
  mandatory step; an exited one only the steps that were already due when the
  patient left the pathway (the rest are explained by the exit, which a lead reviews).
- per-day steps (ward stay) repeat by design: only omission applies to them.

Detected variances that later stop being true (an omission whose step is then
recorded late; a delay undone by a back-dated earlier event) are never deleted:
if still unexplained they are withdrawn with a "superseded" reason, so the
clinician's inbox only holds what is true now. Anything a clinician documented is
left as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.audit import audit_record
from config.pgcopy import copy_rows, next_ids
from pathways.models import Step

from .models import (
    CRITICAL_STEP_CRITICALITY,
    Detection,
    Episode,
    StepEvent,
    Variance,
    VarianceRevision,
    next_updated_at_expression,
)
from .services import SNAPSHOT_DATETIME_FIELDS, SNAPSHOT_FIELDS, variance_snapshot

# Episodes evaluated per transaction in the bulk path.
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class StepSpec:
    id: int
    code: str
    anchor_id: int | None = None
    window_min: int | None = None
    window_max: int | None = None
    mandatory: bool = True
    must_follow: tuple[int, ...] = ()
    per_day: bool = False
    criticality: int = 1


@dataclass(frozen=True)
class EventFact:
    id: int
    step_id: int | None
    activity: str
    occurred_at: datetime


@dataclass(frozen=True)
class Finding:
    key: str
    variance_type: str
    step_id: int | None = None
    event_id: int | None = None
    due_from: datetime | None = None
    due_by: datetime | None = None
    happened_at: datetime | None = None
    minutes_outside: int | None = None


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def addition_key(activity: str) -> str:
    """One key per activity name (case and spacing ignored), within the 120-character field."""
    name = " ".join(activity.split()).lower()
    if len(name) <= 100:
        return f"addition:{name}"
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"addition:{name[:88]}:{digest}"


def window(
    step: StepSpec, *, started_at: datetime, first: dict[int, EventFact]
) -> tuple[datetime | None, datetime | None]:
    """When a step is due: ``(due_from, due_by)``; unknown while its anchor step has not happened."""
    if step.anchor_id is None:
        anchor_at = started_at
    else:
        anchor_event = first.get(step.anchor_id)
        if anchor_event is None:
            return None, None
        anchor_at = anchor_event.occurred_at
    due_from = anchor_at + timedelta(minutes=step.window_min) if step.window_min is not None else None
    due_by = anchor_at + timedelta(minutes=step.window_max) if step.window_max is not None else None
    return due_from, due_by


def first_events(steps: Sequence[StepSpec], events: Iterable[EventFact]) -> dict[int, EventFact]:
    """The event that satisfies each step: its first (ties broken by id)."""
    step_ids = {s.id for s in steps}
    first: dict[int, EventFact] = {}
    for event in sorted(events, key=lambda e: (e.occurred_at, e.id)):
        if event.step_id in step_ids:
            first.setdefault(event.step_id, event)
    return first


def omission_due(step: StepSpec, *, due_by, ended_at, status, now) -> bool:
    """Whether a missing mandatory step is now an omission (see the module docstring)."""
    return step.mandatory and _omission_due(due_by, None, ended_at, status, now)


def detect(
    steps: Sequence[StepSpec],
    *,
    started_at: datetime,
    ended_at: datetime | None,
    status: str,
    events: Iterable[EventFact],
    now: datetime,
) -> list[Finding]:
    """Every departure the episode shows now, in a stable order. Pure: no database."""
    by_id = {s.id: s for s in steps}
    first: dict[int, EventFact] = {}
    additions: dict[str, EventFact] = {}
    for event in sorted(events, key=lambda e: (e.occurred_at, e.id)):
        if event.step_id is not None and event.step_id in by_id:
            first.setdefault(event.step_id, event)
        elif event.step_id is None and event.activity.strip():
            additions.setdefault(addition_key(event.activity), event)

    findings: list[Finding] = []
    for step in steps:
        due_from, due_by = window(step, started_at=started_at, first=first)
        event = first.get(step.id)
        if event is None:
            if step.mandatory and _omission_due(due_by, started_at, ended_at, status, now):
                findings.append(
                    Finding(
                        key=f"omission:{step.code}",
                        variance_type="omission",
                        step_id=step.id,
                        due_from=due_from,
                        due_by=due_by,
                    )
                )
            continue
        if step.per_day:
            continue
        at = event.occurred_at
        outside = None
        if due_by is not None and at > due_by:
            outside = ("delay", at - due_by)
        elif due_from is not None and at < due_from:
            outside = ("early", due_from - at)
        if outside is not None:
            kind, by = outside
            findings.append(
                Finding(
                    key=f"{kind}:{step.code}",
                    variance_type=kind,
                    step_id=step.id,
                    event_id=event.id,
                    due_from=due_from,
                    due_by=due_by,
                    happened_at=at,
                    minutes_outside=_minutes(by),
                )
            )
        for before_id in step.must_follow:
            before = first.get(before_id)
            if before is not None and (at, event.id) < (before.occurred_at, before.id):
                findings.append(
                    Finding(
                        key=f"sequence:{step.code}:{by_id[before_id].code}",
                        variance_type="sequence",
                        step_id=step.id,
                        event_id=event.id,
                        happened_at=at,
                        minutes_outside=_minutes(before.occurred_at - at),
                    )
                )
    for key, event in additions.items():
        findings.append(Finding(key=key, variance_type="addition", event_id=event.id, happened_at=event.occurred_at))
    return findings


def _omission_due(due_by, started_at, ended_at, status, now) -> bool:
    if status == Episode.Status.COMPLETED:
        return True
    if status == Episode.Status.EXITED:
        return due_by is not None and ended_at is not None and due_by <= ended_at
    return due_by is not None and now > due_by


# --- applying findings to the database ---------------------------------------------


def load_step_specs(version_ids: Iterable[int]) -> dict[int, list[StepSpec]]:
    """Steps of many versions in two queries, grouped by version."""
    version_ids = list(set(version_ids))
    follows: dict[int, list[int]] = defaultdict(list)
    through = Step.must_follow.through
    for from_id, to_id in through.objects.filter(from_step__version_id__in=version_ids).values_list(
        "from_step_id", "to_step_id"
    ):
        follows[from_id].append(to_id)
    specs: dict[int, list[StepSpec]] = defaultdict(list)
    rows = (
        Step.objects.filter(version_id__in=version_ids)
        .order_by("version_id", "stage__order", "order", "id")
        .values_list(
            "id",
            "version_id",
            "code",
            "anchor_id",
            "window_min_minutes",
            "window_max_minutes",
            "mandatory",
            "per_day",
            "criticality",
        )
    )
    for sid, vid, code, anchor, wmin, wmax, mandatory, per_day, criticality in rows:
        specs[vid].append(
            StepSpec(
                id=sid,
                code=code,
                anchor_id=anchor,
                window_min=wmin,
                window_max=wmax,
                mandatory=mandatory,
                must_follow=tuple(sorted(follows.get(sid, ()))),
                per_day=per_day,
                criticality=criticality,
            )
        )
    return specs


def evaluate_episode(episode_id: int, now: datetime | None = None) -> Counter:
    """Detect one episode's departures; returns the new variances counted by type."""
    return evaluate_episodes([episode_id], now=now)


def evaluate_episodes(episode_ids: Iterable[int], now: datetime | None = None) -> Counter:
    """Detect departures for many episodes in a few queries per chunk.

    Returns a ``Counter`` of newly created variances by type. Episodes are locked
    (in id order) for the duration of their chunk, so that the per-event task and
    the beat sweep cannot both insert the same finding.
    """
    now = now or timezone.now()
    ids = sorted(set(episode_ids))
    created: Counter = Counter()
    for start in range(0, len(ids), CHUNK_SIZE):
        created.update(_evaluate_chunk(ids[start : start + CHUNK_SIZE], now))
    return created


@transaction.atomic
def _evaluate_chunk(ids: list[int], now: datetime) -> Counter:
    episodes = list(
        Episode.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "version_id", "started_at", "ended_at", "status", "patient_ref")
    )
    if not episodes:
        return Counter()
    specs = load_step_specs(e[1] for e in episodes)
    criticality = {s.id: s.criticality for version_specs in specs.values() for s in version_specs}

    events: dict[int, list[EventFact]] = defaultdict(list)
    for eid, episode_id, step_id, activity, occurred_at in (
        StepEvent.objects.filter(episode_id__in=ids)
        .order_by()
        .values_list("pk", "episode_id", "step_id", "activity", "occurred_at")
    ):
        events[episode_id].append(EventFact(eid, step_id, activity, occurred_at))

    # What was found before: key -> (variance id, its status).
    known: dict[int, dict[str, tuple[int | None, str | None]]] = defaultdict(dict)
    for episode_id, key, variance_id, variance_status in Detection.objects.filter(episode_id__in=ids).values_list(
        "episode_id", "key", "variance__id", "variance__status"
    ):
        known[episode_id][key] = (variance_id, variance_status)

    new: list[tuple] = []
    superseded: dict[int, str] = {}
    for episode_id, version_id, started_at, ended_at, status, _ref in episodes:
        findings = detect(
            specs.get(version_id, ()),
            started_at=started_at,
            ended_at=ended_at,
            status=status,
            events=events.get(episode_id, ()),
            now=now,
        )
        before = known.get(episode_id, {})
        new.extend(_new_rows(episode_id, findings, before, criticality, ended_at, now))
        current_keys = {f.key for f in findings}
        stale = [
            variance_id
            for key, (variance_id, variance_status) in before.items()
            if key not in current_keys and variance_id and variance_status == Variance.Status.UNEXPLAINED
        ]
        if stale:
            first_at = _first_at_by_code(specs.get(version_id, ()), events.get(episode_id, ()))
            for key, (variance_id, _status) in before.items():
                if variance_id in stale:
                    superseded[variance_id] = _superseded_reason(key, first_at)
    return _store(new, superseded, ids, {e[0]: e[5] for e in episodes}, now)


@dataclass(frozen=True)
class NewEpisode:
    """An episode the caller has just created, with its events as written (their ids included)."""

    id: int
    version_id: int
    started_at: datetime
    ended_at: datetime | None
    status: str
    patient_ref: str
    events: Sequence[EventFact]


@transaction.atomic
def evaluate_new_episodes(episodes: Sequence[NewEpisode], *, now: datetime) -> Counter:
    """``evaluate_episodes`` for episodes created in the caller's open transaction, from the facts in hand.

    The same rules, rows, revisions and audit as ``evaluate_episodes``, without reading
    back what the caller has just written (a bulk import): nothing can have been
    detected on these episodes before, and no one else sees them until the caller
    commits, so there is nothing to lock, read or supersede.
    """
    if not episodes:
        return Counter()
    specs = load_step_specs(e.version_id for e in episodes)
    criticality = {s.id: s.criticality for version_specs in specs.values() for s in version_specs}
    new: list[tuple] = []
    for episode in episodes:
        findings = detect(
            specs.get(episode.version_id, ()),
            started_at=episode.started_at,
            ended_at=episode.ended_at,
            status=episode.status,
            events=episode.events,
            now=now,
        )
        new.extend(_new_rows(episode.id, findings, {}, criticality, episode.ended_at, now))
    ids = sorted(e.id for e in episodes)
    return _store(new, {}, ids, {e.id: e.patient_ref for e in episodes}, now)


def _new_rows(
    episode_id: int,
    findings: Sequence[Finding],
    before: dict[str, tuple[int | None, str | None]],
    criticality: dict[int, int],
    ended_at: datetime | None,
    now: datetime,
) -> list[tuple]:
    """The findings not known before, as rows in ``_NEW_COLUMNS`` order."""
    rows = []
    for f in findings:
        if f.key in before:
            continue
        review = (
            f.variance_type == Variance.Type.OMISSION and criticality.get(f.step_id, 0) >= CRITICAL_STEP_CRITICALITY
        )
        occurred = f.happened_at or f.due_by or ended_at or now
        rows.append(
            (episode_id, f.step_id, f.event_id, f.variance_type, f.key, now)
            + (f.due_from, f.due_by, f.happened_at, f.minutes_outside, occurred, review)
        )
    return rows


def _store(
    new: list[tuple], superseded: dict[int, str], ids: list[int], refs: dict[int, str], now: datetime
) -> Counter:
    """Write new findings and withdraw superseded ones; mark the episodes changed; one audit event."""
    if connection.vendor == "postgresql":
        _insert_pg(new)
    else:
        _insert_orm(new)
    if superseded:
        VarianceRevision.objects.bulk_create(_withdraw_superseded(superseded, now))

    changed = {row[0] for row in new}
    if superseded:
        changed.update(Variance.objects.filter(pk__in=superseded).values_list("episode_id", flat=True))
    if changed:
        Episode.objects.filter(pk__in=changed).update(
            updated_at=next_updated_at_expression(now), row_version=F("row_version") + 1
        )
    counts = Counter(row[3] for row in new)
    if new or superseded:
        single = len(ids) == 1
        audit_record(
            action="detection.run",
            actor=None,
            object_type="variances.episode" if single else "",
            object_id=str(ids[0]) if single else "",
            episode_ref=refs.get(ids[0], "") if single else "",
            detail={
                "episodes": len(ids),
                "created": dict(counts),
                "superseded": len(superseded),
            },
        )
    return counts


# Columns of a new finding, in the order ``_new_rows`` builds them; the first ten are the detection's.
_NEW_COLUMNS = (
    "episode_id",
    "step_id",
    "event_id",
    "variance_type",
    "key",
    "detected_at",
    "due_from",
    "due_by",
    "happened_at",
    "minutes_outside",
    "occurred_at",
    "review_required",
)


def _new_variance(row: tuple, detection_id: int) -> dict:
    """The unexplained variance of a new finding, as ``SNAPSHOT_FIELDS`` values (its revision 1)."""
    return {
        "episode_id": row[0],
        "step_id": row[1],
        "resource_id": None,
        "variance_type": row[3],
        "cause": "",
        "reason_id": None,
        "valence": "",
        "level": Variance.Level.PROCESS.value,
        "justified": None,
        "avoidable": None,
        "rationale": "",
        "action_taken": "",
        "occurred_at": row[10],
        "recorded_at": row[5],
        "recorded_by_id": None,
        "documented_at": None,
        "status": Variance.Status.UNEXPLAINED.value,
        "detection_id": detection_id,
        "reviewed_by_id": None,
        "reviewed_at": None,
        "review_comment": "",
        "withdrawn_reason": "",
        "review_required": row[11],
        "revision": 1,
    }


def _insert_orm(new: list[tuple]) -> None:
    """Portable path (SQLite): three bulk inserts, each variance with its revision 1."""
    detections = [Detection(**dict(zip(_NEW_COLUMNS[:10], row[:10], strict=True))) for row in new]
    Detection.objects.bulk_create(detections)
    variances = [Variance(**_new_variance(row, d.pk)) for d, row in zip(detections, new, strict=True)]
    Variance.objects.bulk_create(variances)
    VarianceRevision.objects.bulk_create([_revision(v, reason="detected", at=v.recorded_at) for v in variances])


def _insert_pg(new: list[tuple]) -> None:
    """PostgreSQL: ids taken up front, then one ``COPY`` per table.

    An import of a large log creates hundreds of thousands of findings: multi-row
    ``INSERT``s spent most of their time being parsed and planned, and the ORM
    seconds compiling them. Revision 1's snapshot is ``variance_snapshot`` of the
    variance as stored (times in UTC).
    """
    if not new:
        return
    detection_ids = next_ids(Detection._meta.db_table, len(new))
    variance_ids = next_ids(Variance._meta.db_table, len(new))
    detections, variances, revisions = [], [], []
    for row, detection_id, variance_id in zip(new, detection_ids, variance_ids, strict=True):
        detections.append((detection_id, *row[:10]))
        state = _new_variance(row, detection_id)
        variances.append((variance_id, *state.values()))
        for name in SNAPSHOT_DATETIME_FIELDS:
            if state[name] is not None:
                state[name] = state[name].astimezone(UTC).isoformat()
        revisions.append((variance_id, 1, None, row[5], "detected", json.dumps(state)))
    copy_rows(Detection._meta.db_table, ("id", *_NEW_COLUMNS[:10]), detections)
    copy_rows(Variance._meta.db_table, ("id", *SNAPSHOT_FIELDS), variances)
    copy_rows(
        VarianceRevision._meta.db_table,
        ("variance_id", "number", "changed_by_id", "changed_at", "reason", "snapshot"),
        revisions,
    )


def _superseded_reason(key: str, first_at_by_code: dict[str, datetime]) -> str:
    if key.startswith("omission:"):
        at = first_at_by_code.get(key.split(":", 1)[1])
        if at is not None:
            return f"superseded: step recorded late at {timezone.localtime(at):%Y-%m-%d %H:%M}"
    return "superseded: no longer detected after further events were recorded"


def _first_at_by_code(steps: Sequence[StepSpec], events: Iterable[EventFact]) -> dict[str, datetime]:
    code_of = {s.id: s.code for s in steps}
    first: dict[str, datetime] = {}
    for event in events:
        code = code_of.get(event.step_id)
        if code is not None and (code not in first or event.occurred_at < first[code]):
            first[code] = event.occurred_at
    return first


def _revision(variance: Variance, *, reason: str, at: datetime) -> VarianceRevision:
    return VarianceRevision(
        variance_id=variance.pk,
        number=variance.revision,
        changed_by=None,
        changed_at=at,
        reason=reason,
        snapshot=variance_snapshot(variance),
    )


def _withdraw_superseded(superseded: dict[int, str], now: datetime) -> list[VarianceRevision]:
    if not superseded:
        return []
    rows = list(Variance.objects.select_for_update().filter(pk__in=superseded, status=Variance.Status.UNEXPLAINED))
    for variance in rows:
        variance.status = Variance.Status.WITHDRAWN
        variance.withdrawn_reason = superseded[variance.pk]
        variance.revision += 1
    Variance.objects.bulk_update(rows, ["status", "withdrawn_reason", "revision"])
    return [_revision(v, reason=v.withdrawn_reason, at=now) for v in rows]
