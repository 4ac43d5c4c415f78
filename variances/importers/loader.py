"""Bulk loading of an event log onto a pathway: episodes, events, outcomes, detection.

One episode per case. The case id never reaches the database: the patient
reference is a keyed hash of it (``patient_ref_for``), and nothing else about
the patient is read from the file. Events are stored in time order with
``source=import`` and an external id that is a hash of the source, pathway,
case, activity, time and occurrence, so importing the same file again (or a
later export that repeats earlier events) creates nothing twice.

The whole import runs in one transaction. Problems in the file are collected
as it is read; unless ``skip_bad`` is given, any problem rolls everything back
("a bad file changes nothing"), after the whole file has been checked so that
every problem is reported at once. With ``skip_bad`` a case with any bad row is
left out as a whole: a case missing one event would show false omissions.

Cases are written in batches: per batch a handful of queries (look up existing
episodes, insert episodes, insert events, run detection), so memory depends on
the batch size, never on the file size.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connection, reset_queries, transaction
from django.db.models import Max, Min
from django.template.defaultfilters import pluralize
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import OrgUnit
from config.pgcopy import ESCAPES, NULL, next_ids
from pathways.models import Pathway, PathwayVersion, Resource, Step

from ..detection import EventFact, NewEpisode, evaluate_episodes, evaluate_new_episodes
from ..models import Episode, EventQuantity, StepEvent, next_updated_at, validate_patient_ref
from .mapping import READMISSION_WINDOW, Mapping, MappingError
from .readers import (
    OrphanProblem,
    Problem,
    SourceCase,
    SourceFormatError,
    csv_has_cost_column,
    open_source,
    read_source,
)

BATCH_CASES = 1000
BATCH_EVENTS = 25_000
MAX_PROBLEMS_KEPT = 500  # every problem is counted; this many are kept to show
MAX_UNMAPPED_NAMES = 100
CLOCK_SKEW = timedelta(minutes=5)
IMPORT = StepEvent.Source.IMPORT


class ImportFailed(Exception):
    """The import could not start (unknown pathway, bad mapping, unreadable file): nothing changed."""


@dataclass
class ImportSummary:
    file_name: str = ""
    file_sha256: str = ""
    format: str = ""
    source: str = ""
    pathway: str = ""
    version: int | None = None
    org_unit: str = ""
    closed: bool = False
    dry_run: bool = False
    skip_bad: bool = False
    cases_read: int = 0
    cases_imported: int = 0
    cases_skipped: int = 0
    events_read: int = 0
    events_created: int = 0
    events_already_imported: int = 0
    events_unplanned: int = 0
    events_ignored: int = 0
    events_other_lifecycle: int = 0
    outcome_events: int = 0
    episodes_created: int = 0
    episodes_updated: int = 0
    episodes_unchanged: int = 0
    variances: Counter = field(default_factory=Counter)
    unmapped: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)  # version number -> episodes created on it
    not_in_version: Counter = field(default_factory=Counter)  # mapped activity -> events where its step was not
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    seconds: float = 0.0
    committed: bool = False

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds > 0 else 0.0

    def add_problem(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(problem)

    def to_dict(self) -> dict:
        """JSON-safe form, stored with a browser import job."""
        return {
            "file_name": self.file_name,
            "file_sha256": self.file_sha256,
            "format": self.format,
            "source": self.source,
            "pathway": self.pathway,
            "version": self.version,
            "org_unit": self.org_unit,
            "closed": self.closed,
            "dry_run": self.dry_run,
            "skip_bad": self.skip_bad,
            "cases_read": self.cases_read,
            "cases_imported": self.cases_imported,
            "cases_skipped": self.cases_skipped,
            "events_read": self.events_read,
            "events_created": self.events_created,
            "events_already_imported": self.events_already_imported,
            "events_unplanned": self.events_unplanned,
            "events_ignored": self.events_ignored,
            "events_other_lifecycle": self.events_other_lifecycle,
            "outcome_events": self.outcome_events,
            "episodes_created": self.episodes_created,
            "episodes_updated": self.episodes_updated,
            "episodes_unchanged": self.episodes_unchanged,
            "variances": dict(sorted(self.variances.items())),
            "unmapped": dict(self.unmapped.most_common()),
            "versions": {str(number): count for number, count in sorted(self.versions.items())},
            "not_in_version": dict(self.not_in_version.most_common()),
            "problems": [{"where": p.where, "reason": p.reason} for p in self.problems],
            "problem_count": self.problem_count,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second),
            "committed": self.committed,
        }

    def lines(self) -> list[str]:
        """The summary as a person reads it at the end of a command-line import."""
        out = []
        verdict = (
            "Dry run: nothing was saved."
            if self.dry_run
            else "Imported."
            if self.committed
            else "Nothing was imported: the file has problems (use --skip-bad to import the good cases)."
        )
        out.append(verdict)
        out.append(f"File: {self.file_name} ({self.format.upper()}), source '{self.source}'")
        out.append(f"Pathway: {versions_text(self.to_dict())}, org unit {self.org_unit}")
        other = f", {self.events_other_lifecycle} other lifecycle" if self.events_other_lifecycle else ""
        if blocked := why_nothing_was_imported(self.to_dict()):
            # Rolled back: only what was read is a fact, not what an earlier batch had written.
            out.append(f"Cases: {blocked}")
            out.append(
                f"Events: {self.events_read} read, none saved; {self.events_unplanned} would be unplanned "
                f"(additions), {self.events_ignored} ignored, {self.outcome_events} outcomes{other}"
            )
        else:
            out.append(
                f"Cases: {self.cases_read} read, {self.cases_imported} imported, "
                f"{self.cases_skipped} skipped for problems"
            )
            out.append(
                f"Events: {self.events_read} read, {self.events_created} new, "
                f"{self.events_already_imported} already imported, {self.events_unplanned} unplanned (additions), "
                f"{self.events_ignored} ignored, {self.outcome_events} outcomes{other}"
            )
            out.append(
                f"Episodes: {self.episodes_created} created, {self.episodes_updated} updated, "
                f"{self.episodes_unchanged} unchanged"
            )
            if self.variances:
                by_type = ", ".join(f"{kind} {count}" for kind, count in sorted(self.variances.items()))
                out.append(f"Variances detected: {sum(self.variances.values())} ({by_type})")
            else:
                out.append("Variances detected: none new")
        if self.not_in_version:
            names = ", ".join(f"{name} ({count})" for name, count in self.not_in_version.most_common(10))
            out.append(f"Mapped, but their step is not in the version the case follows (additions there): {names}")
        if self.unmapped:
            names = ", ".join(f"{name} ({count})" for name, count in self.unmapped.most_common(10))
            would = "would be " if blocked else ""
            out.append(f"Unmapped activities ({would}imported as additions): {names}")
        if self.problem_count:
            out.append(f"Problems: {self.problem_count}")
            out.extend(f"  {p}" for p in self.problems[:50])
            if self.problem_count > 50:
                out.append(f"  ... and {self.problem_count - 50} more")
        out.append(f"Time: {self.seconds:.2f} s, {self.events_per_second:,.0f} events per second")
        return out


def versions_text(summary: dict) -> str:
    """The pathway and the versions the import's episodes follow: "SEPSIS-ED v2", or per version when several."""
    versions = summary.get("versions") or {}
    if set(versions) <= {str(summary["version"])}:
        return f"{summary['pathway']} v{summary['version']}"
    if summary.get("committed") or summary.get("dry_run"):
        each = ", ".join(f"v{number} {count} episode{pluralize(count)}" for number, count in versions.items())
    else:  # rolled back: what had been written is not a fact
        each = ", ".join(f"v{number}" for number in versions)
    return f"{summary['pathway']} ({each}: each on the version in force on its start date)"


def why_nothing_was_imported(summary: dict, *, skip: str = "use --skip-bad") -> str:
    """The cases figure of an import that problems stopped, in words ("" when they stopped nothing).

    ``skip`` is how the reader asks for the good cases alone (the command's option, the
    form's checkbox). Without skipping, one bad case stops the whole import and what
    was written before it is rolled back, so "0 imported, 1 skipped" (or an earlier
    batch's episodes) would read as work done. This says what happened instead.
    """
    problem_count = summary.get("problem_count", 0)
    if not problem_count or summary.get("skip_bad"):
        return ""
    read, bad = summary["cases_read"], summary["cases_skipped"]
    good = read - bad
    verb = "would be" if summary.get("dry_run") else "was"
    if bad:
        trouble = f"{bad} case{pluralize(bad)} {pluralize(bad, 'has,have')} problems"
        others = f"the other {good}"
    else:  # rows that belong to no case
        trouble = f"the file has {problem_count} problem{pluralize(problem_count)} outside any case"
        others = f"the {good} case{pluralize(good)}"
    text = f"{read} case{pluralize(read)} read; {trouble}, so nothing {verb} imported"
    if good:
        text += f" ({skip} to import {others})"
    return text


def patient_ref_for(case_id: str, *, source: str, prefix: str) -> str:
    """The pseudonymous reference of a case: prefix + 16 hex digits of a keyed hash.

    Keyed with ``settings.PSEUDONYM_KEY`` (when set) so that someone who can read
    CommonPath but not the key cannot turn guessed hospital numbers into
    references; salted with the source so two systems' case ids never collide.
    """
    key = settings.PSEUDONYM_KEY.encode()
    digest = hmac.new(key, f"{source}\x1f{case_id}".encode(), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:16].upper()}"


def external_id_for(*, source: str, pathway: str, case_id: str, activity: str, at: datetime, occurrence: int) -> str:
    """Stable id of one event: same content, same id, whichever file it came in."""
    text = f"{source}\x1f{pathway}\x1f{case_id}\x1f{activity}\x1f{at.timestamp():.6f}\x1f{occurrence}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def trust_root() -> OrgUnit:
    root = OrgUnit.objects.filter(parent__isnull=True).order_by("path").first()
    if root is None:
        raise ImportFailed("There is no trust (root org unit) to import into; create the organisation first.")
    return root


StepTargets = dict[str, tuple[int, tuple[tuple[int, Decimal], ...]]]  # activity -> (step id, ((resource id, qty), ...))


@dataclass(frozen=True)
class VersionPlan:
    """The mapping resolved against one version of the pathway."""

    version: PathwayVersion
    steps: StepTargets
    # Mapped activities whose step this version does not have: on its episodes they are
    # activities not on the pathway (additions), as they were when the version was in force.
    missing: frozenset[str]


class Plan:
    """The mapping resolved against a pathway: each case follows the version in force on its start date.

    As for an episode started in the browser or the API (``PathwayVersionQuerySet.in_force``):
    a log of past stays is judged by the version that was in force then, not by one agreed
    later. ``resolve`` checks the mapping against the published version and the earlier ones.
    """

    def __init__(self, *, version: PathwayVersion, mapping: Mapping, resource_ids: dict[str, int]):
        self.version = version  # the published version
        self.cost_resource_id = resource_ids.get(mapping.cost_resource) if mapping.cost_resource else None
        self._mapping = mapping
        self._resource_ids = resource_ids
        self._versions: dict[int, VersionPlan] = {}
        self._days: dict[date, VersionPlan] = {}
        self._version_on = PathwayVersion.objects.in_force_on(version.pathway)  # one query, then each day in Python
        self.current = self.for_version(version)

    def for_version(self, version: PathwayVersion | int) -> VersionPlan:
        version_id = version if isinstance(version, int) else version.pk
        found = self._versions.get(version_id)
        if found is None:
            if isinstance(version, int):
                version = PathwayVersion.objects.get(pk=version_id)
            step_ids = dict(Step.objects.filter(version_id=version_id).values_list("code", "id"))
            steps = {
                activity: (
                    step_ids[target.step_code],
                    tuple((self._resource_ids[code], quantity) for code, quantity in target.quantities),
                )
                for activity, target in self._mapping.steps.items()
                if target.step_code in step_ids
            }
            found = VersionPlan(version, steps, frozenset(self._mapping.steps.keys() - steps.keys()))
            self._versions[version_id] = found
        return found

    def on(self, day: date) -> VersionPlan:
        """The version a case starting on ``day`` (local date) follows."""
        found = self._days.get(day)
        if found is None:
            version = self._version_on(day) or self.version
            found = self._days[day] = self.for_version(version)
        return found


def resolve(mapping: Mapping, *, pathway_code: str, problems: Sequence[str] = ()) -> Plan:
    """Check the mapping against the pathway's versions; ``MappingError`` lists what does not fit.

    A step must be in the published version or an earlier one (cases starting while an
    earlier version was in force follow it).

    ``problems`` are those already found in the file itself (``MappingError.problems``
    with ``MappingError.mapping``): they head the same list, so that every problem of a
    mapping is reported at once instead of the pathway's only after the file is fixed.
    """
    pathway = Pathway.objects.filter(code=pathway_code).first()
    if pathway is None:
        raise ImportFailed(f"There is no pathway with the code {pathway_code}.")
    version = PathwayVersion.objects.published().filter(pathway=pathway).select_related("pathway").first()
    if version is None:
        raise ImportFailed(f"{pathway_code} has no published version; publish it before importing events onto it.")
    problems = list(problems)
    if mapping.pathway and mapping.pathway != pathway_code:
        problems.append(f"it was written for the pathway {mapping.pathway}, not {pathway_code}")
    step_codes = set(Step.objects.filter(version=version).values_list("code", flat=True))
    # A step the published version dropped is still right for the cases an earlier version takes.
    earlier_codes = set(
        Step.objects.filter(version__pathway=pathway, version__status=PathwayVersion.Status.RETIRED).values_list(
            "code", flat=True
        )
    )
    for activity, target in mapping.steps.items():
        if target.step_code not in step_codes | earlier_codes:
            problems.append(
                f"steps['{activity}']: {target.step_code} is not a step of {pathway_code} v{version.number} "
                f"(its steps: {', '.join(sorted(step_codes))})"
            )
    resource_ids = dict(Resource.objects.filter(code__in=mapping.resource_codes).values_list("code", "id"))
    for code in sorted(mapping.resource_codes - set(resource_ids)):
        problems.append(f"there is no resource with the code {code}")
    if problems:
        raise MappingError(mapping.name, problems)
    return Plan(version=version, mapping=mapping, resource_ids=resource_ids)


# --- preparing a case ------------------------------------------------------------------


@dataclass(slots=True)
class PreparedEvent:
    name: str  # the source's activity name
    step_id: int | None
    activity: str  # stored only for an activity not on the pathway (an addition)
    occurred_at: datetime
    resource: str
    external_id: str
    quantities: tuple[tuple[int, Decimal, Decimal | None], ...]  # (resource id, quantity, unit cost)
    cost: Decimal | None  # the source's cost of the event, if it gave one


def _place(
    plan: VersionPlan, name: str, cost: Decimal | None, cost_resource_id: int | None
) -> tuple[int | None, str, tuple[tuple[int, Decimal, Decimal | None], ...]]:
    """Where an activity lands on a version: ``(step id or None, activity stored, quantities)``."""
    target = plan.steps.get(name)
    if target is not None:
        step_id, planned = target
        quantities = tuple((rid, qty, None) for rid, qty in planned) if planned else ()
        stored = ""
    else:
        step_id, quantities, stored = None, (), name  # not on the pathway: an addition
    if cost is not None:
        # The cost is the event's actual price of one unit of the cost resource.
        quantities = tuple(q for q in quantities if q[0] != cost_resource_id) + ((cost_resource_id, ONE, cost),)
    return step_id, stored, quantities


@dataclass(slots=True)
class PreparedCase:
    patient_ref: str
    version_id: int
    where: str
    events: list[PreparedEvent]
    outcomes: list[tuple[str, datetime]]


class _Rollback(Exception):
    pass


class Importer:
    def __init__(
        self,
        *,
        mapping: Mapping,
        plan: Plan,
        org_unit: OrgUnit,
        closed: bool,
        skip_bad: bool,
        actor,
        summary: ImportSummary,
        now: datetime,
    ):
        self.mapping = mapping
        self.plan = plan
        self.org_unit = org_unit
        self.closed = closed
        self.skip_bad = skip_bad
        self.actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
        self.summary = summary
        self.now = now
        self.stamp = now  # recorded_at/created_at of everything this run writes
        self.writing = True

    # Problems: without --skip-bad the first one stops all writing; the file is
    # still read to the end so that every problem is reported in one go.
    def problem(self, problem: Problem) -> None:
        self.summary.add_problem(problem)
        if not self.skip_bad:
            self.writing = False

    def prepare(self, case: SourceCase) -> PreparedCase | None:
        summary = self.summary
        mapping = self.mapping
        summary.cases_read += 1
        summary.events_read += case.rows
        problems = list(case.problems)
        latest = self.now + CLOCK_SKEW
        kept = []
        outcomes = []
        for event in case.events:
            if event.lifecycle:
                summary.events_other_lifecycle += 1
                continue
            if event.timestamp > latest:
                problems.append(Problem(event.where, "the timestamp is in the future"))
                continue
            if event.activity in mapping.ignore:
                summary.events_ignored += 1
            elif event.activity in mapping.outcomes:
                outcomes.append((mapping.outcomes[event.activity], event.timestamp))
            else:
                kept.append(event)
        if problems:
            # The whole case is left out (counted in cases_skipped): a case missing
            # one event would show false omissions.
            for p in problems:
                self.problem(p)
            summary.cases_skipped += 1
            return None
        if self.plan.cost_resource_id is None and any(e.cost is not None for e in kept):
            self.problem(Problem(case.where, "events carry a cost but the mapping names no cost_resource"))
            summary.cases_skipped += 1
            return None
        summary.outcome_events += len(outcomes)
        kept.sort(key=lambda e: (e.timestamp, e.position))
        plan = self.plan.on(timezone.localdate(kept[0].timestamp)) if kept else self.plan.current
        source, pathway = mapping.source, self.plan.version.pathway.code
        # external_id_for(), inlined: the same text, built once per case up to the activity.
        prefix = f"{source}\x1f{pathway}\x1f{case.case_id}\x1f"
        unmapped, cost_rid = summary.unmapped, self.plan.cost_resource_id
        occurrences: dict = {}
        prepared = []
        for event in kept:
            activity, at = event.activity, event.timestamp
            occurrence = occurrences.get((activity, at), 0)
            occurrences[(activity, at)] = occurrence + 1
            step_id, stored_activity, quantities = _place(plan, activity, event.cost, cost_rid)
            if step_id is None:
                summary.events_unplanned += 1
                if activity in plan.missing:
                    summary.not_in_version[activity] += 1
                elif activity in unmapped or len(unmapped) < MAX_UNMAPPED_NAMES:
                    unmapped[activity] += 1
            text = f"{prefix}{activity}\x1f{at.timestamp():.6f}\x1f{occurrence}"
            prepared.append(
                PreparedEvent(
                    activity,
                    step_id,
                    stored_activity,
                    at,
                    event.resource,
                    hashlib.blake2b(text.encode(), digest_size=16).hexdigest(),
                    quantities,
                    event.cost,
                )
            )
        ref = patient_ref_for(case.case_id, source=source, prefix=mapping.patient_ref_prefix)
        return PreparedCase(
            patient_ref=ref, version_id=plan.version.pk, where=case.where, events=prepared, outcomes=outcomes
        )

    # --- writing a batch -------------------------------------------------------------

    def write(self, batch: list[PreparedCase]) -> None:
        summary = self.summary
        refs = [c.patient_ref for c in batch]
        existing: dict[str, dict] = {}
        for row in (
            Episode.objects.filter(version__pathway_id=self.plan.version.pathway_id, patient_ref__in=refs)
            .order_by("id")
            .values(
                "id", "patient_ref", "version_id", "started_at", "ended_at", "status", "readmitted_30d", "complication"
            )
        ):
            existing.setdefault(row["patient_ref"], row)
        touched_now = set()
        if existing:
            ids = [row["id"] for row in existing.values()]
            touched_now = set(
                Episode.objects.filter(pk__in=ids, created_at=self.stamp).values_list("id", flat=True)
            ) | set(
                StepEvent.objects.filter(episode_id__in=ids, source=IMPORT, recorded_at=self.stamp).values_list(
                    "episode_id", flat=True
                )
            )

        new_cases: list[PreparedCase] = []
        old_cases: list[tuple[PreparedCase, dict]] = []
        seen: set[str] = set()
        for case in batch:
            row = existing.get(case.patient_ref)
            if case.patient_ref in seen or (row is not None and row["id"] in touched_now):
                self.problem(
                    Problem(
                        case.where,
                        "this case continues a case that ended earlier in the file; the rows of a case must be "
                        "together (sort the file by case_id, then timestamp)",
                    )
                )
                summary.cases_skipped += 1
                continue
            seen.add(case.patient_ref)
            if row is None and not case.events:
                self.problem(
                    Problem(case.where, "the case has no activities on the pathway (only ignored or outcome ones)")
                )
                summary.cases_skipped += 1
                continue
            if row is None:
                new_cases.append(case)
            else:
                old_cases.append((case, row))
        if not self.writing:
            return

        new_rows = [self._new_episode(case) for case in new_cases]
        summary.versions.update(self.plan.for_version(case.version_id).version.number for case in new_cases)
        episode_ids = insert_episodes(new_rows)
        summary.episodes_created += len(episode_ids)

        events: list[tuple[int, PreparedEvent]] = []
        for case, episode_id in zip(new_cases, episode_ids, strict=True):
            events.extend((episode_id, p) for p in case.events)
        summary.events_created += len(events)

        self._update_existing(old_cases, events)
        event_ids = iter(
            insert_events(events, recorded_at=self.stamp, recorded_by_id=self.actor.pk if self.actor else None)
        )
        summary.cases_imported += len(new_cases) + len(old_cases)
        # New episodes are judged on the events in hand (their ids come first, in order);
        # episodes imported before are read back, with what was detected on them then.
        summary.variances.update(
            evaluate_new_episodes(
                [
                    NewEpisode(
                        id=episode_id,
                        version_id=row["version_id"],
                        started_at=row["started_at"],
                        ended_at=row["ended_at"],
                        status=row["status"],
                        patient_ref=row["patient_ref"],
                        events=[EventFact(next(event_ids), p.step_id, p.activity, p.occurred_at) for p in case.events],
                    )
                    for case, row, episode_id in zip(new_cases, new_rows, episode_ids, strict=True)
                ],
                now=self.now,
            )
        )
        if old_cases:
            summary.variances.update(evaluate_episodes([row["id"] for _case, row in old_cases], now=self.now))

    def _new_episode(self, case: PreparedCase) -> dict:
        validate_patient_ref(case.patient_ref)
        started = case.events[0].occurred_at
        ended = case.events[-1].occurred_at if self.closed else None
        readmitted, complication = _outcomes(case.outcomes, ended, None, None)
        return {
            "patient_ref": case.patient_ref,
            "version_id": case.version_id,
            "org_unit_id": self.org_unit.pk,
            "started_at": started,
            "ended_at": ended,
            "status": Episode.Status.COMPLETED if self.closed else Episode.Status.ACTIVE,
            "readmitted_30d": readmitted,
            "complication": complication,
            "created_at": self.stamp,
            "updated_at": self.stamp,
        }

    def _follow(self, case: PreparedCase, version_id: int) -> None:
        """Put a case's events on the version its episode follows (imported before, on another version)."""
        plan, cost_rid, summary = self.plan.for_version(version_id), self.plan.cost_resource_id, self.summary
        for p in case.events:
            was_planned = p.step_id is not None
            p.step_id, p.activity, p.quantities = _place(plan, p.name, p.cost, cost_rid)
            if was_planned != (p.step_id is not None):
                summary.events_unplanned += 1 if was_planned else -1
        case.version_id = version_id

    def _update_existing(self, old_cases: list[tuple[PreparedCase, dict]], events: list) -> None:
        """Add what is new to episodes imported before; close them or set outcomes as asked."""
        summary = self.summary
        if not old_cases:
            return
        ids = [row["id"] for _case, row in old_cases]
        candidates = [p.external_id for case, _row in old_cases for p in case.events]
        known: set[str] = set()
        for start in range(0, len(candidates), 5000):
            known.update(
                StepEvent.objects.filter(source=IMPORT, external_id__in=candidates[start : start + 5000]).values_list(
                    "external_id", flat=True
                )
            )
        span = {
            row["episode_id"]: (row["first"], row["last"])
            for row in StepEvent.objects.filter(episode_id__in=ids)
            .order_by()
            .values("episode_id")
            .annotate(first=Min("occurred_at"), last=Max("occurred_at"))
        }
        changed: list[Episode] = []
        for case, row in old_cases:
            if case.version_id != row["version_id"]:
                self._follow(case, row["version_id"])
            fresh = [p for p in case.events if p.external_id not in known]
            summary.events_already_imported += len(case.events) - len(fresh)
            summary.events_created += len(fresh)
            events.extend((row["id"], p) for p in fresh)
            first, last = span.get(row["id"], (None, None))
            if fresh:
                first = min(first or fresh[0].occurred_at, fresh[0].occurred_at)
                last = max(last or fresh[-1].occurred_at, fresh[-1].occurred_at)
            started, ended, status = row["started_at"], row["ended_at"], row["status"]
            if first is not None and first < started:
                started = first
            if self.closed and last is not None:
                if status == Episode.Status.ACTIVE:
                    status, ended = Episode.Status.COMPLETED, max(last, started)
                elif status == Episode.Status.COMPLETED and ended < last:
                    ended = last
            readmitted, complication = _outcomes(case.outcomes, ended, row["readmitted_30d"], row["complication"])
            values = {
                "started_at": started,
                "ended_at": ended,
                "status": status,
                "readmitted_30d": readmitted,
                "complication": complication,
            }
            if fresh or any(row[name] != value for name, value in values.items()):
                changed.append(Episode(pk=row["id"], **values))
            else:
                summary.episodes_unchanged += 1
        if changed:
            current = {
                pk: (row_version, updated_at)
                for pk, row_version, updated_at in Episode.objects.filter(pk__in=[e.pk for e in changed]).values_list(
                    "pk", "row_version", "updated_at"
                )
            }
            for episode in changed:
                row_version, updated_at = current[episode.pk]
                episode.updated_at = next_updated_at(updated_at, self.stamp)
                episode.row_version = row_version + 1
            Episode.objects.bulk_update(
                changed,
                ["started_at", "ended_at", "status", "readmitted_30d", "complication", "updated_at", "row_version"],
                batch_size=500,
            )
            summary.episodes_updated += len(changed)


# --- inserting episodes and events --------------------------------------------------------

ONE = Decimal("1")


def insert_episodes(rows: list[dict]) -> list[int]:
    """Insert new episodes in bulk; returns their ids in the order given.

    PostgreSQL: one ``INSERT ... SELECT FROM unnest(arrays)`` per batch (one
    parameter per column, not per value). Elsewhere: ``bulk_create``. Columns
    the rows do not give take the model's defaults.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        episodes = [Episode(**row) for row in rows]
        Episode.objects.bulk_create(episodes, batch_size=1000)
        return [e.pk for e in episodes]
    fields = [f for f in Episode._meta.concrete_fields if not f.primary_key]
    columns, arrays, casts = [], [], []
    for f in fields:
        default = None if f.null and not f.has_default() else f.get_default()
        columns.append(f.column)
        arrays.append([row.get(f.attname, default) for row in rows])
        casts.append(f"%s::{f.db_type(connection)}[]")
    table = Episode._meta.db_table
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({', '.join(casts)}) "  # noqa: S608 - model metadata
        "RETURNING id, patient_ref"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        id_of = {ref: pk for pk, ref in cursor.fetchall()}
    return [id_of[row["patient_ref"]] for row in rows]


def insert_events(events: list[tuple[int, PreparedEvent]], *, recorded_at: datetime, recorded_by_id) -> list[int]:
    """Insert events (and their actual quantities) in bulk, in the order given (time order per episode).

    Returns the events' ids in the same order. PostgreSQL with psycopg2: ids taken
    from the sequence up front, then ``COPY``, several times faster than ``INSERT``
    for hundreds of thousands of events. Elsewhere: ``bulk_create``.
    """
    if not events:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if hasattr(cursor.cursor, "copy_expert"):
                return _copy_events(cursor, events, recorded_at, recorded_by_id)
    rows = [
        StepEvent(
            episode_id=episode_id,
            step_id=p.step_id,
            activity=p.activity,
            occurred_at=p.occurred_at,
            recorded_at=recorded_at,
            recorded_by_id=recorded_by_id,
            performed_by=p.resource,
            source=IMPORT,
            external_id=p.external_id,
        )
        for episode_id, p in events
    ]
    StepEvent.objects.bulk_create(rows, batch_size=2000)
    EventQuantity.objects.bulk_create(
        [
            EventQuantity(event_id=row.pk, resource_id=rid, quantity=qty, unit_cost=cost)
            for row, (_episode_id, p) in zip(rows, events, strict=True)
            for rid, qty, cost in p.quantities
        ],
        batch_size=2000,
    )
    return [row.pk for row in rows]


def _copy_events(cursor, events, recorded_at, recorded_by_id) -> list[int]:
    # COPY text format: tab-separated, \N for NULL, backslash escapes in text.
    # Ids are taken in row order, so they follow time order within an episode.
    table = StepEvent._meta.db_table
    ids = next_ids(table, len(events))
    escapes, null = ESCAPES, NULL
    tail = f"{recorded_at.isoformat()}\t{null if recorded_by_id is None else recorded_by_id}"
    buffer = io.StringIO()
    buffer.writelines(
        f"{pk}\t{episode_id}\t{null if p.step_id is None else p.step_id}\t{p.activity.translate(escapes)}\t"
        f"{p.occurred_at.isoformat()}\t{tail}\t{p.resource.translate(escapes)}\t{IMPORT.value}\t{p.external_id}\n"
        for pk, (episode_id, p) in zip(ids, events, strict=True)
    )
    buffer.seek(0)
    cursor.cursor.copy_expert(
        f"COPY {table} (id, episode_id, step_id, activity, occurred_at, recorded_at, recorded_by_id, performed_by, "
        "source, external_id) FROM STDIN",
        buffer,
    )
    buffer = io.StringIO()
    buffer.writelines(
        f"{pk}\t{rid}\t{qty}\t1\t{null if cost is None else cost}\n"
        for pk, (_episode_id, p) in zip(ids, events, strict=True)
        for rid, qty, cost in p.quantities
    )
    if buffer.tell():
        buffer.seek(0)
        cursor.cursor.copy_expert(
            f"COPY {EventQuantity._meta.db_table} (event_id, resource_id, quantity, headcount, unit_cost) FROM STDIN",
            buffer,
        )
    return ids


def _outcomes(
    outcomes: list[tuple[str, datetime]], ended: datetime | None, readmitted: bool | None, complication: bool | None
) -> tuple[bool | None, bool | None]:
    """Outcomes only ever become known, never unknown: an import does not undo one."""
    if ended is not None and readmitted is not True:
        came_back = any(kind == "readmitted_30d" and at <= ended + READMISSION_WINDOW for kind, at in outcomes)
        readmitted = True if came_back else (False if readmitted is None else readmitted)
    if any(kind == "complication" for kind, _at in outcomes):
        complication = True
    return readmitted, complication


def _begin(source: str) -> None:
    """Serialise imports of one source, and check references as each batch is written.

    Two imports of one source at once would race on the same external ids. Django's
    foreign keys are deferred to the commit, where PostgreSQL would queue a check per
    reference of the whole file in the backend's memory (about 80 MB more per million
    events) and run them all at the end; checked per statement, the queue stays one batch.
    """
    if connection.vendor == "postgresql":
        key = int.from_bytes(hashlib.blake2b(source.encode(), digest_size=8).digest(), "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _end() -> None:
    """Django's default again (every foreign key deferred) for the rest of a transaction the import runs in."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


ProgressCallback = Callable[[int, int, ImportSummary], None]


def import_events(
    path: str | os.PathLike,
    *,
    mapping: Mapping,
    pathway_code: str,
    org_unit: OrgUnit | None = None,
    closed: bool = False,
    dry_run: bool = False,
    skip_bad: bool = False,
    actor=None,
    file_name: str = "",
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """Import an XES or CSV event log onto a pathway and run detection on every imported episode.

    Raises ``ImportFailed`` / ``MappingError`` when the import cannot start
    (nothing is read or written); otherwise returns the summary, with
    ``committed`` False when problems (without ``skip_bad``) or ``dry_run``
    rolled everything back.
    """
    started = time.perf_counter()
    path = Path(path)
    file_name = file_name or path.name
    plan = resolve(mapping, pathway_code=pathway_code)
    unit = org_unit or trust_root()
    summary = ImportSummary(
        file_name=file_name,
        source=mapping.source,
        pathway=pathway_code,
        version=plan.version.number,
        org_unit=unit.code,
        closed=closed,
        dry_run=dry_run,
        skip_bad=skip_bad,
    )
    try:
        summary.file_sha256 = file_sha256(path)
        opened = open_source(path, name=file_name)
    except OSError as exc:
        raise ImportFailed(f"The file {file_name} cannot be read: {exc.strerror or exc}") from exc
    except SourceFormatError as exc:
        raise ImportFailed(f"{file_name}: {exc}") from exc
    summary.format = opened.format
    try:
        if csv_has_cost_column(opened) and plan.cost_resource_id is None:
            raise MappingError(
                mapping.name, ["the file has a cost column, so the mapping must name the cost_resource it is for"]
            )
        importer = Importer(
            mapping=mapping,
            plan=plan,
            org_unit=unit,
            closed=closed,
            skip_bad=skip_bad,
            actor=actor,
            summary=summary,
            now=now or timezone.now(),
        )
        try:
            with transaction.atomic():
                _begin(mapping.source)
                _run(importer, opened, progress)
                _end()
                if dry_run or not importer.writing or (summary.problem_count and not skip_bad):
                    raise _Rollback
                summary.seconds = time.perf_counter() - started
                audit_record(
                    action="events.import",
                    actor=importer.actor,
                    object_type="variances.import",
                    object_id=summary.file_sha256[:16],
                    detail={
                        key: value
                        for key, value in summary.to_dict().items()
                        if key not in ("problems", "unmapped", "seconds", "events_per_second")
                    },
                )
                summary.committed = True
        except _Rollback:
            summary.committed = False
        except SourceFormatError as exc:
            raise ImportFailed(f"{file_name}: {exc}") from exc
    finally:
        opened.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _run(importer: Importer, opened, progress: ProgressCallback | None) -> None:
    batch: list[PreparedCase] = []
    batch_events = 0
    lifecycle = importer.mapping.lifecycle
    for item in read_source(opened, lifecycle=lifecycle):
        if isinstance(item, OrphanProblem):
            importer.summary.events_read += 1
            importer.problem(item.problem)
            continue
        prepared = importer.prepare(item)
        if prepared is None:
            continue
        batch.append(prepared)
        batch_events += len(prepared.events)
        if len(batch) >= BATCH_CASES or batch_events >= BATCH_EVENTS:
            importer.write(batch)
            batch, batch_events = [], 0
            # With DEBUG on, Django keeps the text of every query (9,000 of them, some
            # of a megabyte here): forget them per batch so memory stays flat.
            reset_queries()
            if progress:
                progress(opened.position(), opened.size, importer.summary)
    if batch:
        importer.write(batch)
    if progress:
        progress(opened.size, opened.size, importer.summary)
