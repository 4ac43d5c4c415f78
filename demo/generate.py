"""Synthetic episodes at the scale of a large trust (``manage.py generate_demo``).

Generates realistic pathway data on the published demo pathways: arrivals over
years (weekday, time-of-day and winter patterns; electives on weekdays only),
each step timed around its window (on time mostly, sometimes late, early or
missed), about a third of episodes departing from the pathway, reasons drawn per
step, actual quantities and dearer items on some events, outcomes (length of
stay, destination, readmission, complication), and the documentation that
clinicians and leads would have added (explained, reviewed).

What is *detected* is not invented here: each episode's events go through the
product's own rules (``variances.detection.detect``), so every detected variance
is one the detector would raise. The rows are then written in bulk (PostgreSQL
``COPY``; plain multi-row inserts on SQLite), keeping the invariants the
services keep: every variance has its revision 1 (and one revision per later
change, each with the full snapshot), detections carry their per-episode unique
keys, and each episode's ``updated_at`` is the time of its last change.

Deterministic: the same seed, cutoff and pathways give the same data. Times are
kept as local wall-clock seconds while generating (days, weekdays and opening
hours are local) and turned into UTC once, when written.
"""

from __future__ import annotations

import bisect
import io
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Membership, OrgUnit, User
from config.background import BackgroundWriter
from config.pgcopy import next_ids
from costing.models import CostRate
from demo import org, sepsis
from demo import pathways as demo_pathways
from pathways.models import PathwayVersion, Resource, Step
from variances.detection import CRITICAL_STEP_CRITICALITY, EventFact, StepSpec, detect, load_step_specs
from variances.models import Detection, Episode, EventQuantity, ReasonCode, StepEvent, Variance, VarianceRevision
from variances.services import SNAPSHOT_DATETIME_FIELDS, SNAPSHOT_FIELDS

DAY = 86_400
HOUR = 3_600
MINUTE = 60
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Episodes are written (and committed) in batches of about this many events, so
# memory stays one batch whatever the number of episodes.
BATCH_EVENTS = 100_000

Type = Variance.Type
Status = Variance.Status

# --- how each pathway behaves --------------------------------------------------------------


@dataclass(frozen=True)
class StepProfile:
    """How one step departs from its plan, where the pathway's defaults are not enough."""

    weight: float = 1.0  # relative chance of being the step a deviant episode departs on
    types: tuple[tuple[str, float], ...] = ()  # (variance type, weight); empty: by the window
    reasons: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)  # type -> (code, weight)
    done_share: float | None = None  # optional steps: how often they happen
    daily: bool = False  # repeated each morning of an inpatient stay (monitoring bloods)


@dataclass(frozen=True)
class PathwayProfile:
    share: float  # of all generated episodes
    elective: bool  # admitted on weekdays, in the morning
    winter: float  # seasonal swing: +winter in January, -winter in July
    variance_share: float  # episodes given a deliberate departure
    exit_share: float
    addition_share: float  # of deviant episodes: an activity off the pathway
    units: tuple[str, ...]  # where the episodes are, first the most common
    los_sigma: float  # spread of the length of stay around the expected
    admitted_share: float  # pathways without a per-day step: stays overnight
    destinations: tuple[tuple[str, float], ...]
    readmission: float
    complication: float
    additions: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # activity, ((resource, qty),)
    steps: dict[str, StepProfile] = field(default_factory=dict)
    longer_procedures: float = 0.25  # share of minute-costed events that record their actual minutes
    dearer_items: float = 0.04  # share of events with a costly item that record a higher price


PRICED_KINDS = (Resource.Kind.CONSUMABLE, Resource.Kind.DRUG, Resource.Kind.EQUIPMENT)
HOME = (("home", 0.8), ("care home", 0.1), ("rehabilitation unit", 0.06), ("other hospital", 0.04))

PROFILES: dict[str, PathwayProfile] = {
    # NHFD: most hip fractures are older people who fell; a third stay beyond the
    # expected, many leave for rehabilitation or a care home.
    "HIP-FRACTURE": PathwayProfile(
        share=0.30,
        elective=False,
        winter=0.15,
        variance_share=0.28,
        exit_share=0.03,
        addition_share=0.3,
        units=("ORTHO-W7", "ORTHO"),
        los_sigma=0.45,
        admitted_share=1.0,
        destinations=(("home", 0.45), ("care home", 0.2), ("rehabilitation unit", 0.28), ("other hospital", 0.07)),
        readmission=0.1,
        complication=0.16,
        additions=(
            ("Blood transfusion", ()),
            ("CT head after a fall on the ward", ()),
            ("Delirium specialist review", ()),
            ("Extra physiotherapy session", (("PHYSIOTHERAPIST", "45"),)),
        ),
    ),
    # Elective knees: weekday lists, short stays, few departures.
    "TKR": PathwayProfile(
        share=0.25,
        elective=True,
        winter=-0.05,
        variance_share=0.18,
        exit_share=0.01,
        addition_share=0.25,
        units=("ORTHO-ELEC", "ORTHO-W7", "ORTHO"),
        los_sigma=0.35,
        admitted_share=1.0,
        destinations=(("home", 0.95), ("rehabilitation unit", 0.05)),
        readmission=0.05,
        complication=0.04,
        additions=(
            ("Extra physiotherapy session", (("PHYSIOTHERAPIST", "45"),)),
            ("Wound review", (("WARD-NURSE", "20"),)),
            ("Manipulation under anaesthesia", (("THEATRE", "30"), ("CONSULTANT", "30"))),
        ),
        steps={
            "SURGERY": StepProfile(weight=2.0),
            "PHYSIO": StepProfile(
                weight=1.5,
                reasons={"omission": (("patient-fears-discomfort", 3), ("service-not-available", 3), ("action-not-priority", 1))},
            ),
        },
    ),
    # The busiest door of the hospital: winter peaks, hour-1 bundle often late.
    "SEPSIS-ED": PathwayProfile(
        share=0.45,
        elective=False,
        winter=0.25,
        variance_share=0.27,
        exit_share=0.02,
        addition_share=0.2,
        units=("ED",),
        los_sigma=0.6,
        admitted_share=0.7,
        destinations=HOME,
        readmission=0.12,
        complication=0.15,
        additions=(("Blood cultures repeated", (("NCC-PATH05", "1"),)), ("Chest X-ray", ())),
        steps={
            "IV-ANTIBIOTICS": StepProfile(
                weight=2.5,
                types=(("delay", 8), ("early", 1), ("omission", 1)),
                reasons={
                    "delay": (("limited-time", 4), ("need-more-info", 3), ("wrong-time-workflow", 2), ("implementation-challenges", 1)),
                    "early": (("mitigate-risk-negative-outcome", 1),),
                },
            ),
            "LACTATE": StepProfile(weight=1.5, daily=True),
            "BLOODS": StepProfile(daily=True),
            "SEPSIS-TRIAGE": StepProfile(weight=1.5, types=(("delay", 1),)),
            "ADMISSION": StepProfile(done_share=0.7, reasons={"delay": (("service-not-available", 5), ("need-more-info", 1))}),
        },
    ),
}  # fmt: skip

# Pathways with no profile here get this one (shares split evenly).
DEFAULT_PROFILE = PathwayProfile(
    share=0.1,
    elective=False,
    winter=0.1,
    variance_share=0.33,
    exit_share=0.02,
    addition_share=0.2,
    units=(),
    los_sigma=0.4,
    admitted_share=0.6,
    destinations=HOME,
    readmission=0.08,
    complication=0.1,
)

# Reasons by (variance type, step type), then by variance type alone (step type None).
REASONS: dict[tuple[str, str | None], tuple[tuple[str, float], ...]] = {
    ("delay", "procedure"): (("service-not-available", 40), ("patient-contraindication", 25), ("need-more-info", 15), ("limited-time", 10), ("comorbidity-disability", 10)),
    ("delay", "assessment"): (("limited-time", 45), ("service-not-available", 25), ("wrong-time-workflow", 20), ("need-more-info", 10)),
    ("delay", "investigation"): (("need-more-info", 30), ("implementation-challenges", 25), ("limited-time", 25), ("service-not-available", 20)),
    ("delay", "medication"): (("limited-time", 35), ("wrong-time-workflow", 25), ("need-more-info", 25), ("patient-contraindication", 15)),
    ("delay", "therapy"): (("service-not-available", 45), ("patient-fears-discomfort", 20), ("action-not-priority", 20), ("comorbidity-disability", 15)),
    ("delay", "discharge"): (("inadequate-support", 55), ("service-not-available", 30), ("need-more-info", 15)),
    ("delay", "stay"): (("inadequate-support", 45), ("service-not-available", 30), ("comorbidity-disability", 25)),
    ("delay", None): (("limited-time", 40), ("service-not-available", 35), ("wrong-time-workflow", 25)),
    ("omission", "therapy"): (("patient-fears-discomfort", 30), ("action-not-priority", 30), ("comorbidity-disability", 20), ("service-not-available", 20)),
    ("omission", "education"): (("patient-does-not-want-change", 35), ("limited-time", 35), ("recipient-does-not-understand", 30)),
    ("omission", None): (("patient-ineligible", 25), ("action-not-priority", 20), ("prefers-alternative", 15), ("patient-contraindication", 15), ("action-completed", 10), ("limited-time", 10), ("patient-refuses", 5)),
    ("early", None): (("mitigate-risk-negative-outcome", 50), ("risk-benefit-ratio", 25), ("action-completed", 25)),
    ("sequence", None): (("wrong-time-workflow", 50), ("need-more-info", 25), ("mitigate-risk-negative-outcome", 25)),
    ("addition", None): (("mitigate-risk-negative-outcome", 35), ("risk-benefit-ratio", 25), ("likely-negative-health-outcomes", 20), ("comorbidity-disability", 20)),
    ("exit", None): (("patient-ineligible", 30), ("likely-negative-health-outcomes", 30), ("action-not-priority", 20), ("prefers-alternative", 20)),
    ("override", None): (("risk-benefit-ratio", 40), ("comorbidity-disability", 35), ("mitigate-risk-negative-outcome", 25)),
    ("substitution", None): (("service-not-available", 60), ("implementation-challenges", 40)),
}  # fmt: skip

RATIONALE = {
    "service-not-available": "Not available at the time; done at the first slot that opened.",
    "limited-time": "Department at full stretch; done as soon as staff were free.",
    "wrong-time-workflow": "Came at the wrong point of the shift handover.",
    "need-more-info": "Waited for results before going ahead.",
    "implementation-challenges": "Equipment or system problem on the day.",
    "patient-contraindication": "Contraindicated for this patient at the time.",
    "comorbidity-disability": "Other conditions needed treating first.",
    "patient-fears-discomfort": "Patient was in too much pain and anxious; tried again later.",
    "action-not-priority": "Not the priority in the patient's condition at the time.",
    "patient-ineligible": "Patient did not meet the criteria for this step.",
    "prefers-alternative": "Patient chose another option after discussion.",
    "action-completed": "Already done before this episode.",
    "patient-refuses": "Patient declined.",
    "inadequate-support": "Awaiting a care package at home.",
    "mitigate-risk-negative-outcome": "Done earlier to reduce the risk of deterioration.",
    "risk-benefit-ratio": "Judged better for this patient on balance of risk.",
    "likely-negative-health-outcomes": "Likely to do more harm than good for this patient.",
    "patient-does-not-want-change": "Patient did not want it.",
    "recipient-does-not-understand": "Patient could not take it in at the time.",
}
ACTIONS = (
    "",
    "",
    "Escalated to the nurse in charge.",
    "Re-booked for the next available slot.",
    "Discussed at handover.",
)

VALENCE = {
    "early": (("positive", 6), ("neutral", 4)),
    "addition": (("positive", 3), ("neutral", 4), ("negative", 3)),
    "override": (("neutral", 5), ("positive", 3), ("negative", 2)),
    "substitution": (("neutral", 1),),
    "exit": (("neutral", 1),),
}
NEGATIVE = (("negative", 8), ("neutral", 2))
JUSTIFIED = {"patient": 0.9, "community": 0.9, "system": 0.85, "clinician": 0.65}
AVOIDABLE = {"patient": 0.15, "community": 0.4, "system": 0.7, "clinician": 0.5}

FIRST_NAMES = (
    "Amara", "Ben", "Chloe", "Daniel", "Esther", "Femi", "Grace", "Hamza", "Isla", "Jonah", "Kavya", "Liam",
    "Maya", "Nikhil", "Olivia", "Pavel", "Rosa", "Sanjay", "Tara", "Usman", "Vera", "Wei", "Yusuf", "Zara",
)  # fmt: skip
SURNAMES = (
    "Adebayo", "Brennan", "Chowdhury", "Dlamini", "Evans", "Fischer", "Gallagher", "Hussain", "Ibrahim", "Jones",
    "Kowalski", "Lindqvist", "Mensah", "Nakamura", "O'Neill", "Patel", "Quinn", "Rahman", "Szabo", "Thompson",
)  # fmt: skip

# Per-day weights for emergency arrivals (Monday first) and their hour of day.
EMERGENCY_WEEKDAYS = (1.08, 1.02, 1.0, 0.99, 1.0, 0.95, 0.96)
EMERGENCY_HOURS = (
    2,
    1.5,
    1.2,
    1,
    1,
    1.2,
    2,
    3,
    4.5,
    5.5,
    6,
    6,
    5.8,
    5.6,
    5.5,
    5.4,
    5.4,
    5.5,
    5.2,
    4.8,
    4.2,
    3.6,
    3,
    2.4,
)
ELECTIVE_WEEKDAYS = (1.0, 1.0, 1.0, 1.0, 0.9, 0.03, 0.0)
GROWTH_PER_YEAR = 0.02


def _cumulative(weights) -> list[float]:
    out, running = [], 0.0
    for w in weights:
        running += w
        out.append(running)
    return out


class _Choice:
    """Weighted choice by bisecting cumulative weights (built once, used millions of times)."""

    __slots__ = ("values", "cum", "total")

    def __init__(self, pairs):
        pairs = [(v, float(w)) for v, w in pairs if w > 0]
        self.values = [v for v, _ in pairs]
        self.cum = _cumulative(w for _, w in pairs)
        self.total = self.cum[-1] if self.cum else 0.0

    def __call__(self, rng: random.Random):
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.total)]

    def __bool__(self) -> bool:
        return bool(self.values)


# --- the catalogue: what exists in the database -------------------------------------------


@dataclass
class _Planned:
    resource_id: int
    quantity: Decimal
    headcount: int
    unit: str
    kind: str
    rate: Decimal | None


@dataclass
class _StepPlan:
    id: int
    code: str
    step_type: str
    anchor_id: int | None
    wmin: int | None
    wmax: int | None
    mandatory: bool
    per_day: bool
    expected: float
    must_follow: tuple[int, ...]
    criticality: int
    planned: list[_Planned]
    profile: StepProfile
    minute_resources: list[_Planned] = field(default_factory=list)
    priced_item: _Planned | None = None


@dataclass
class _VersionPlan:
    version_id: int
    effective_day: int  # local day number from which episodes start on it
    steps: list[_StepPlan]  # in an order where anchors come first
    specs: list[StepSpec]
    per_day: _StepPlan | None
    discharge: _StepPlan | None
    deviation_steps: _Choice
    daily: list[_StepPlan] = field(default_factory=list)


@dataclass
class _PathwayPlan:
    code: str
    profile: PathwayProfile
    versions: list[_VersionPlan]  # by effective day
    units: _Choice
    clinicians: dict[int, list[int]]  # unit id -> clinician user ids
    leads: dict[int, int]  # unit id -> a clinical lead's user id
    additions: list[tuple[str, list[tuple[int, str]]]]

    def version_on(self, day: int) -> _VersionPlan:
        chosen = self.versions[0]
        for version in self.versions:
            if version.effective_day <= day:
                chosen = version
        return chosen


def prepare_demo(*, stdout=None) -> None:
    """The demo trust, its users and pathways (idempotent), without the hand-made demo episodes.

    HIP-FRACTURE and TKR come from ``demo/pathways.py``, SEPSIS-ED from
    ``demo/sepsis.py`` (its pathway only: not the 4TU log, which ``load_demo`` imports).
    """
    out = stdout or io.StringIO()
    units = org.load_org()
    users = {u.username: u for u in org.load_users(units)}
    demo_pathways.load(units=units, users=users, stdout=out)
    actor = users.get("ed-lead")
    sepsis.build_pathway(owner_unit=units["ED"], actor=actor, resources=sepsis.load_resources(actor=actor))


class GenerationError(Exception):
    """Generation cannot start (no pathway, already generated for this seed)."""


def _latest_rates() -> dict[int, Decimal]:
    rates: dict[int, Decimal] = {}
    for resource_id, rate in CostRate.objects.order_by("resource_id", "financial_year").values_list(
        "resource_id", "rate"
    ):
        rates[resource_id] = rate
    return rates


def _order_by_anchor(steps: list[_StepPlan]) -> list[_StepPlan]:
    """Pathway order, except that a step always comes after its anchor."""
    done: set[int] = set()
    out: list[_StepPlan] = []
    pending = list(steps)
    while pending:
        progressed = False
        for step in list(pending):
            if step.anchor_id is None or step.anchor_id in done or step.anchor_id not in {s.id for s in steps}:
                out.append(step)
                done.add(step.id)
                pending.remove(step)
                progressed = True
        if not progressed:  # a cycle the model forbids in practice: keep pathway order
            out.extend(pending)
            break
    return out


def _step_plans(version_ids: list[int], rates: dict[int, Decimal], profiles: dict[int, PathwayProfile]):
    specs = load_step_specs(version_ids)
    by_version: dict[int, list[_StepPlan]] = defaultdict(list)
    steps = (
        Step.objects.filter(version_id__in=version_ids)
        .select_related("version__pathway")
        .prefetch_related("planned_resources__resource")
        .order_by("version_id", "stage__order", "order", "id")
    )
    follows = {spec.id: spec.must_follow for version_specs in specs.values() for spec in version_specs}
    for step in steps:
        profile = profiles[step.version_id].steps.get(step.code, StepProfile())
        planned = [
            _Planned(
                resource_id=p.resource_id,
                quantity=p.quantity,
                headcount=p.headcount,
                unit=p.resource.unit,
                kind=p.resource.kind,
                rate=rates.get(p.resource_id),
            )
            for p in step.planned_resources.all()
        ]
        plan = _StepPlan(
            id=step.pk,
            code=step.code,
            step_type=step.step_type,
            anchor_id=step.anchor_id,
            wmin=step.window_min_minutes,
            wmax=step.window_max_minutes,
            mandatory=step.mandatory,
            per_day=step.per_day,
            expected=float(step.expected_count),
            must_follow=follows.get(step.pk, ()),
            criticality=step.criticality,
            planned=planned,
            profile=profile,
        )
        plan.minute_resources = [p for p in planned if p.unit == Resource.Unit.MINUTE]
        # An item whose price can change with the supplier (an implant), not a whole attendance.
        items = [p for p in planned if p.kind in PRICED_KINDS and p.rate is not None and p.rate >= 250]
        plan.priced_item = max(items, key=lambda p: p.rate, default=None)
        by_version[step.version_id].append(plan)
    return specs, by_version


def _deviation_choice(steps: list[_StepPlan]) -> _Choice:
    """Steps a deliberately deviant episode may depart on, weighted by their profile.

    Not the per-day stay or the discharge (the length of stay decides those), and
    not an untimed step that others are timed from (registration: missing it would
    make the rest of the episode untimed rather than late).
    """
    anchors = {s.anchor_id for s in steps if s.anchor_id is not None}
    pairs = []
    for step in steps:
        timed = step.wmax is not None or (step.wmin is not None and step.wmin > 0)
        if step.per_day or step.step_type == Step.Type.DISCHARGE or (step.id in anchors and not timed):
            continue
        if timed or step.mandatory:
            pairs.append((step, step.profile.weight * (1.5 if timed else 0.5)))
    return _Choice(pairs)


def _covering(memberships: list[Membership], unit: OrgUnit, role: str) -> list[Membership]:
    """Memberships in ``role`` whose unit is ``unit`` or above it (a role covers its subtree)."""
    return [m for m in memberships if m.role == role and unit.path.startswith(m.org_unit.path)]


def _ensure_staff(owner: OrgUnit, wanted: int) -> None:
    """Enough clinicians (and a clinical lead) for a pathway owner's episodes.

    The demo users come first; synthetic colleagues (``syn-<unit>-NN``, unusable
    password: nobody signs in as them) make up the number, so that episodes
    spread over a realistic number of people.
    """
    roles = [Membership.Role.CLINICIAN, Membership.Role.CLINICAL_LEAD]
    memberships = list(Membership.objects.filter(role__in=roles).select_related("org_unit"))
    have = {m.user_id for m in _covering(memberships, owner, Membership.Role.CLINICIAN)}
    prefix = f"syn-{owner.code.lower()}-"
    number = 0
    while len(have) < wanted:
        number += 1
        name = FIRST_NAMES[(number * 7 + len(owner.code)) % len(FIRST_NAMES)]
        surname = SURNAMES[(number * 11 + 3 * len(owner.code)) % len(SURNAMES)]
        user, created = User.objects.get_or_create(
            username=f"{prefix}{number:02d}", defaults={"display_name": f"Dr {name} {surname}"}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Membership.objects.get_or_create(user=user, org_unit=owner, role=Membership.Role.CLINICIAN)
        have.add(user.pk)
    if not _covering(memberships, owner, Membership.Role.CLINICAL_LEAD):
        lead, created = User.objects.get_or_create(
            username=f"{prefix}lead", defaults={"display_name": f"Clinical lead, {owner.name}"}
        )
        if created:
            lead.set_unusable_password()
            lead.save(update_fields=["password"])
        Membership.objects.get_or_create(user=lead, org_unit=owner, role=Membership.Role.CLINICAL_LEAD)


def _staff_for(units: list[OrgUnit]) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Per unit: the clinicians who may be responsible for its episodes, and its clinical lead."""
    roles = [Membership.Role.CLINICIAN, Membership.Role.CLINICAL_LEAD]
    memberships = list(Membership.objects.filter(role__in=roles).select_related("org_unit").order_by("user_id"))
    clinicians, leads = {}, {}
    for unit in units:
        clinicians[unit.pk] = sorted({m.user_id for m in _covering(memberships, unit, Membership.Role.CLINICIAN)})
        # The most specific lead: the one whose unit is deepest above the episode's.
        found = sorted(
            _covering(memberships, unit, Membership.Role.CLINICAL_LEAD),
            key=lambda m: (-len(m.org_unit.path), m.user_id),
        )
        if found:
            leads[unit.pk] = found[0].user_id
    return clinicians, leads


def _episode_units(profile: PathwayProfile, owner: OrgUnit) -> list[tuple[OrgUnit, float]]:
    subtree = list(OrgUnit.objects.subtree_of([owner]).order_by("path"))
    by_code = {u.code: u for u in subtree}
    named = [by_code[code] for code in profile.units if code in by_code]
    if named:
        # The first unit takes most episodes; the others share the rest.
        rest = 0.2 / (len(named) - 1) if len(named) > 1 else 0
        return [(unit, 0.8 if i == 0 else rest) for i, unit in enumerate(named)] if len(named) > 1 else [(named[0], 1)]
    leaves = [u for u in subtree if not any(o.path != u.path and o.path.startswith(u.path) for o in subtree)]
    return [(u, 1.0) for u in leaves] or [(owner, 1.0)]


def _effective_days(versions: list[_VersionPlan], *, first_day: int, cutoff_day: int) -> None:
    """When episodes start on each version (versions in number order; the first from the beginning).

    Their own effective dates where those fall in order before the cutoff; otherwise
    (a demo database whose versions were all published today) the years are shared
    out evenly, so that the older episodes follow the retired versions.
    """
    days = [v.effective_day for v in versions]
    if any(b <= a for a, b in zip(days, days[1:], strict=False)) or days[-1] > cutoff_day:
        span = cutoff_day - first_day
        for i, version in enumerate(versions):
            version.effective_day = first_day + span * i // len(versions)
    versions[0].effective_day = -(10**9)


def load_plans(*, episodes: int, first_day: int, cutoff_day: int) -> list[_PathwayPlan]:
    """Every pathway with a published version, ready to generate on (creating staff where needed)."""
    published = list(
        PathwayVersion.objects.filter(status__in=[PathwayVersion.Status.PUBLISHED, PathwayVersion.Status.RETIRED])
        .select_related("pathway__owner_unit")
        .order_by("pathway__code", "number")
    )
    by_pathway: dict[str, list[PathwayVersion]] = defaultdict(list)
    for version in published:
        by_pathway[version.pathway.code].append(version)
    by_pathway = {code: versions for code, versions in by_pathway.items() if any(
        v.status == PathwayVersion.Status.PUBLISHED for v in versions)}  # fmt: skip
    if not by_pathway:
        raise GenerationError("There is no published pathway to generate episodes on. Run `manage.py load_demo` first.")
    profiles = {code: PROFILES.get(code, DEFAULT_PROFILE) for code in by_pathway}
    total_share = sum(p.share for p in profiles.values())
    rates = _latest_rates()
    version_profiles = {v.pk: profiles[code] for code, versions in by_pathway.items() for v in versions}
    specs, step_plans = _step_plans(list(version_profiles), rates, version_profiles)
    resources = dict(Resource.objects.values_list("code", "pk"))

    # Staff first (one query set for all), then who covers which unit.
    owners: dict[int, tuple[OrgUnit, float]] = {}
    for code, versions in by_pathway.items():
        owner = versions[0].pathway.owner_unit
        share = profiles[code].share / total_share
        owners[owner.pk] = (owner, owners.get(owner.pk, (owner, 0.0))[1] + share)
    for owner, share in owners.values():
        _ensure_staff(owner, wanted=max(4, min(40, round(episodes * share / 2500))))

    plans = []
    for code, versions in sorted(by_pathway.items()):
        profile = profiles[code]
        owner = versions[0].pathway.owner_unit
        units = _episode_units(profile, owner)
        clinicians, leads = _staff_for([u for u, _ in units])
        version_plans = []
        for version in versions:
            steps = _order_by_anchor(step_plans.get(version.pk, []))
            effective = version.effective_from or (version.published_at and timezone.localdate(version.published_at))
            version_plans.append(
                _VersionPlan(
                    version_id=version.pk,
                    effective_day=(effective - date(1970, 1, 1)).days if effective else 0,
                    steps=steps,
                    specs=specs.get(version.pk, []),
                    per_day=next((s for s in steps if s.per_day), None),
                    discharge=next((s for s in steps if s.step_type == Step.Type.DISCHARGE and not s.per_day), None),
                    deviation_steps=_deviation_choice(steps),
                    daily=[s for s in steps if s.profile.daily and not s.per_day],
                )
            )
        _effective_days(version_plans, first_day=first_day, cutoff_day=cutoff_day)
        additions = [
            (activity, [(resources[r], qty) for r, qty in used if r in resources])
            for activity, used in profile.additions
        ]
        plans.append(
            _PathwayPlan(
                code=code,
                profile=replace(profile, share=profile.share / total_share),
                versions=version_plans,
                units=_Choice([(u.pk, w) for u, w in units]),
                clinicians=clinicians,
                leads=leads,
                additions=additions or [("Unplanned review", [])],
            )
        )
    return plans


# --- one episode -----------------------------------------------------------------------------------

API, MANUAL, IMPORT = "api", "manual", "import"
SOURCES = _Choice([(API, 0.7), (MANUAL, 0.2), (IMPORT, 0.1)])
EXIT_REASONS = (
    "Diagnosis changed after review; moved to another pathway.",
    "Transferred to another hospital for specialist care.",
    "Self-discharged against medical advice.",
    "Moved to end-of-life care with the family's agreement.",
)


@dataclass(slots=True)
class _Event:
    step_id: int | None
    activity: str
    at: int  # local seconds
    recorded: int  # local seconds
    source: str
    recorded_by: int | None
    quantities: list[tuple[int, str, int, str | None]] | None = None  # resource, qty, headcount, unit cost
    id: int = 0
    at_utc: int = 0
    recorded_utc: int = 0


@dataclass(slots=True)
class _Recorded:
    """A variance a clinician recorded by hand (not detected): override, substitution, long stay, exit."""

    variance_type: str
    step_id: int | None
    resource_id: int | None
    at: int
    recorded: int
    step_type: str | None
    documented: bool = True
    rationale: str = ""


@dataclass(slots=True)
class _Draft:
    index: int
    pathway: _PathwayPlan
    version: _VersionPlan
    unit_id: int
    clinician_id: int | None
    lead_id: int | None
    start: int
    end: int | None
    status: str
    events: list[_Event]
    recorded: list[_Recorded]
    exit_reason: str = ""
    destination: str = ""
    readmitted: bool | None = None
    complication: bool | None = None
    id: int = 0


class _EpisodeMaker:
    """Draws one episode at a time from a single seeded random stream."""

    def __init__(self, rng: random.Random, *, cutoff: int, seed: int):
        self.rng = rng
        self.cutoff = cutoff
        self.seed = seed
        self._types: dict[int, _Choice] = {}

    def deviation_type(self, step: _StepPlan) -> str | None:
        choice = self._types.get(step.id)
        if choice is None:
            if step.profile.types:
                pairs = list(step.profile.types)
            else:
                pairs = []
                if step.wmax is not None:
                    pairs.append((Type.DELAY, 0.75))
                if step.wmin is not None and step.wmax is not None:
                    pairs.append((Type.EARLY, 0.12 if step.wmin > 0 else 0.04))
                if step.mandatory:
                    pairs.append((Type.OMISSION, 0.15 if step.wmax is not None else 1.0))
            if not step.mandatory:
                pairs = [(t, w) for t, w in pairs if t != Type.OMISSION]
            choice = self._types[step.id] = _Choice(pairs)
        return choice(self.rng) if choice else None

    def _recorded_at(self, at: int, source: str) -> int:
        rng = self.rng
        if source == API:
            return at + _between(rng, 5, 300)
        if source == MANUAL:
            return at + _between(rng, 2 * MINUTE, 3 * HOUR)
        # Nightly import from another system: after 02:00 the next day.
        return (at // DAY + 1) * DAY + 2 * HOUR + _between(rng, 0, HOUR)

    def _on_time(self, step: _StepPlan, anchor: int, cursor: int, first_step: bool) -> int:
        rng = self.rng
        if step.wmax is not None:
            low = step.wmin if step.wmin is not None else 0
            minutes = rng.triangular(low, step.wmax, low + 0.3 * (step.wmax - low))
            return anchor + int(minutes * MINUTE)
        if step.wmin is not None:
            return anchor + step.wmin * MINUTE + int(rng.expovariate(1 / (45 * MINUTE)))
        if first_step:
            return max(anchor, cursor)
        return max(anchor, cursor) + int(rng.expovariate(1 / (25 * MINUTE))) + MINUTE

    def _late(self, step: _StepPlan) -> int:
        width = (step.wmax or 60) - (step.wmin or 0)
        scale = min(max(0.5 * width, 10), 24 * 60)
        return int(max(1.0, scale * self.rng.lognormvariate(0, 0.9)) * MINUTE)

    def _early(self, step: _StepPlan) -> int:
        scale = min(max(0.5 * (step.wmin or 20), 5), 12 * 60)
        return int(max(1.0, scale * self.rng.lognormvariate(-0.5, 0.7)) * MINUTE)

    def _repeats(self, step: _StepPlan) -> int:
        """How many times a step happens (0: not at all), from its expected count."""
        rng = self.rng
        expected = step.expected
        if expected < 1:
            return 1 if rng.random() < expected else 0
        if not step.mandatory and rng.random() > (step.profile.done_share or 0.8):
            return 0
        base = max(1, round(expected))
        r = rng.random()
        if base == 1:
            return 2 if r < 0.03 else 1  # a test repeated now and then
        return base + 1 if r < 0.2 else base - 1 if r < 0.3 else base

    def make(self, pathway: _PathwayPlan, start: int, index: int) -> _Draft:
        rng = self.rng
        profile = pathway.profile
        version = pathway.version_on(start // DAY)
        unit_id = pathway.units(rng)
        clinicians = pathway.clinicians.get(unit_id) or [None]
        clinician = clinicians[int(rng.random() * len(clinicians))]
        draft = _Draft(
            index=index, pathway=pathway, version=version, unit_id=unit_id, clinician_id=clinician,
            lead_id=pathway.leads.get(unit_id), start=start, end=None, status=Episode.Status.ACTIVE,
            events=[], recorded=[],
        )  # fmt: skip

        deviations: dict[int, str] = {}
        if rng.random() < profile.variance_share and version.deviation_steps:
            r = rng.random()
            for _ in range(1 if r < 0.6 else 2 if r < 0.88 else 3):
                step = version.deviation_steps(rng)
                kind = self.deviation_type(step)
                if kind:
                    deviations[step.id] = kind
            if rng.random() < profile.addition_share:
                deviations[0] = Type.ADDITION
        delayed = sum(1 for kind in deviations.values() if kind in (Type.DELAY, Type.OMISSION))

        # Steps, in anchor order.
        events = draft.events
        first: dict[int, int] = {}
        nominal: dict[int, int] = {}
        cursor = start
        for step in version.steps:
            if step.per_day or step is version.discharge:
                continue
            if step.anchor_id is None:
                anchor = start
            else:
                anchor = first.get(step.anchor_id) or nominal.get(step.anchor_id, start)
            on_time = self._on_time(step, anchor, cursor, first_step=not first)
            nominal[step.id] = on_time
            kind = deviations.get(step.id)
            times = self._repeats(step)
            if times == 0 or kind == Type.OMISSION:
                continue
            if kind == Type.DELAY:
                at = (
                    anchor + (step.wmax or 0) * MINUTE + self._late(step)
                    if step.wmax is not None
                    else on_time + self._late(step)
                )
            elif kind == Type.EARLY:
                at = anchor + (step.wmin or 0) * MINUTE - self._early(step)
            else:
                at = on_time
            if kind != Type.EARLY:
                for before in step.must_follow:
                    if before in first and first[before] >= at:
                        at = first[before] + _between(rng, MINUTE, 10 * MINUTE)
            first[step.id] = at
            for repeat in range(times):
                when = at + repeat * _between(rng, 20 * HOUR, 28 * HOUR)
                source = SOURCES(rng)
                event = _Event(step.id, "", when, self._recorded_at(when, source), source,
                               clinician if source == MANUAL else None)  # fmt: skip
                if repeat == 0:
                    self._costs(step, event, draft)
                events.append(event)
            cursor = max(cursor, at)

        last = max((e.at for e in events), default=start)
        if deviations.get(0) == Type.ADDITION:
            activity, used = pathway.additions[int(rng.random() * len(pathway.additions))]
            when = start + int((last - start) * rng.random()) + _between(rng, 10 * MINUTE, 3 * HOUR)
            source = SOURCES(rng)
            event = _Event(None, activity, when, self._recorded_at(when, source), source,
                           clinician if source == MANUAL else None)  # fmt: skip
            if used:
                event.quantities = [(rid, qty, 1, None) for rid, qty in used]
            events.append(event)
            last = max(last, when)

        # Length of stay and the end of the episode.
        if version.per_day is not None:
            expected_los = version.per_day.expected
        else:
            expected_los = 5.0 if rng.random() < profile.admitted_share else 0.0
        if expected_los > 0:
            los = max(
                1,
                round(expected_los * rng.lognormvariate(0, profile.los_sigma))
                + (1 if delayed and rng.random() < 0.5 else 0),
            )
            end = (start // DAY + los) * DAY + _between(rng, 10 * HOUR, 17 * HOUR)
        else:
            end = last + int(rng.expovariate(1 / (3 * HOUR))) + 30 * MINUTE
        end = max(end, last + 30 * MINUTE)
        if version.per_day is not None:
            step = version.per_day
            for day in range(max(1, end // DAY - start // DAY)):
                when = max(start + 5 * MINUTE, (start // DAY + day) * DAY + 8 * HOUR + _between(rng, 0, 2 * HOUR))
                events.append(_Event(step.id, "", when, when + _between(rng, 5, 300), API, None))
            if expected_los and (end // DAY - start // DAY) > step.expected + 1 and rng.random() < 0.3:
                at = (start // DAY + math.ceil(step.expected)) * DAY + 12 * HOUR
                draft.recorded.append(_Recorded(Type.DELAY, step.id, None, at, at + _between(rng, HOUR, DAY), "stay"))
        for step in version.daily:
            if step.id in first:
                for day in range(1, end // DAY - start // DAY):
                    when = (start // DAY + day) * DAY + 6 * HOUR + _between(rng, 0, 2 * HOUR)
                    events.append(_Event(step.id, "", when, when + _between(rng, 5, 300), API, None))
        if version.discharge is not None:
            source = SOURCES(rng)
            events.append(_Event(version.discharge.id, "", end, self._recorded_at(end, source), source,
                                 clinician if source == MANUAL else None))  # fmt: skip

        # Leaving the pathway part-way.
        events.sort(key=lambda e: e.at)
        if rng.random() < profile.exit_share and len(events) > 2:
            cut = events[_between(rng, 1, len(events) - 2)].at + _between(rng, 30 * MINUTE, 12 * HOUR)
            del events[bisect.bisect_right([e.at for e in events], cut) :]
            draft.recorded = [r for r in draft.recorded if r.at <= cut]
            end = cut
            draft.status = Episode.Status.EXITED
            draft.exit_reason = EXIT_REASONS[int(rng.random() * len(EXIT_REASONS))]
            documented = rng.random() < 0.7
            draft.recorded.append(
                _Recorded(
                    Type.EXIT,
                    None,
                    None,
                    end,
                    end + _between(rng, MINUTE, 2 * HOUR),
                    None,
                    documented,
                    draft.exit_reason,
                )  # fmt: skip
            )
        else:
            draft.status = Episode.Status.COMPLETED

        # What had not happened by the cutoff did not happen (yet).
        cutoff = self.cutoff
        if end > cutoff or any(r.recorded > cutoff for r in draft.recorded if r.variance_type == Type.EXIT):
            draft.status = Episode.Status.ACTIVE
            draft.exit_reason = ""
            draft.recorded = [r for r in draft.recorded if r.variance_type != Type.EXIT]
            end = None
        draft.events = [e for e in events if e.recorded <= cutoff]
        draft.recorded = [r for r in draft.recorded if r.recorded <= cutoff]
        draft.end = end

        if end is not None:
            if draft.status == Episode.Status.COMPLETED:
                draft.destination = _pick(rng, profile.destinations)
            if end + 30 * DAY <= cutoff:
                draft.readmitted = rng.random() < profile.readmission + (0.05 if delayed else 0)
            draft.complication = rng.random() < profile.complication + (0.08 if delayed else 0)
        return draft

    def _costs(self, step: _StepPlan, event: _Event, draft: _Draft) -> None:
        """Actual minutes on some procedures, a dearer item on a few; the clinician says why on some."""
        rng = self.rng
        profile = draft.pathway.profile
        quantities = []
        if step.minute_resources and rng.random() < profile.longer_procedures:
            factor = min(max(rng.lognormvariate(0.05, 0.2), 0.6), 2.5)
            for planned in step.minute_resources:
                minutes = max(1, round(float(planned.quantity) * factor))
                quantities.append((planned.resource_id, str(minutes), planned.headcount, None))
            if factor >= 1.3 and step.step_type == Step.Type.PROCEDURE and rng.random() < 0.6:
                draft.recorded.append(
                    _Recorded(
                        Type.OVERRIDE,
                        step.id,
                        None,
                        event.at,
                        event.recorded + _between(rng, MINUTE, 4 * HOUR),
                        step.step_type,
                    )
                )
        item = step.priced_item
        if item is not None and rng.random() < profile.dearer_items:
            price = (item.rate * Decimal(str(round(rng.uniform(1.05, 1.25), 2)))).quantize(Decimal("0.01"))
            quantities.append((item.resource_id, str(item.quantity), item.headcount, str(price)))
            if rng.random() < 0.75:
                draft.recorded.append(
                    _Recorded(
                        Type.SUBSTITUTION,
                        step.id,
                        item.resource_id,
                        event.at,
                        event.recorded + _between(rng, MINUTE, 4 * HOUR),
                        step.step_type,
                    )  # fmt: skip
                )
        if quantities:
            event.quantities = quantities


def _between(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint`` without its overhead (called millions of times)."""
    return low + int(rng.random() * (high - low + 1))


def _pick(rng: random.Random, pairs):
    total = sum(w for _, w in pairs)
    r = rng.random() * total
    for value, weight in pairs:
        r -= weight
        if r < 0:
            return value
    return pairs[-1][0]


# --- writing ----------------------------------------------------------------------------------------

NULL = "\\N"


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    bools: tuple[str, ...] = ()


EPISODES = _Table(
    "variances_episode",
    ("id", "patient_ref", "version_id", "org_unit_id", "responsible_clinician_id", "started_at", "ended_at", "status",
     "exit_reason", "discharge_destination", "readmitted_30d", "complication", "created_at", "updated_at", "row_version"),
    bools=("readmitted_30d", "complication"),
)  # fmt: skip
EVENTS = _Table(
    "variances_stepevent",
    ("id", "episode_id", "step_id", "activity", "occurred_at", "recorded_at", "recorded_by_id", "performed_by",
     "source", "external_id"),
)  # fmt: skip
QUANTITIES = _Table("variances_eventquantity", ("event_id", "resource_id", "quantity", "headcount", "unit_cost"))
DETECTIONS = _Table(
    "variances_detection",
    ("id", "episode_id", "step_id", "event_id", "variance_type", "key", "detected_at", "due_from", "due_by",
     "happened_at", "minutes_outside"),
)  # fmt: skip
VARIANCES = _Table("variances_variance", ("id", *SNAPSHOT_FIELDS), bools=("justified", "avoidable", "review_required"))
REVISIONS = _Table(
    "variances_variancerevision", ("variance_id", "number", "changed_by_id", "changed_at", "reason", "snapshot")
)
TABLES = (EPISODES, EVENTS, QUANTITIES, DETECTIONS, VARIANCES, REVISIONS)
# table -> [(column, referenced table, referenced column)], from the models themselves.
REFERENCES = {
    model._meta.db_table: [
        (f.column, f.related_model._meta.db_table, f.target_field.column)
        for f in model._meta.concrete_fields
        if f.is_relation
    ]
    for model in (Episode, StepEvent, EventQuantity, Detection, Variance, VarianceRevision)
}


def _n(value) -> str:
    return NULL if value is None else str(value)


def _b(value) -> str:
    return NULL if value is None else ("t" if value else "f")


def _esc(text: str) -> str:
    """COPY text format: backslash, tab and line breaks are escaped."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _unesc(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _UNESCAPE:
            out.append(_UNESCAPE[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class _Writer:
    """Bulk rows in COPY text format: streamed by ``COPY`` on PostgreSQL, inserted in bulk elsewhere.

    Ids are taken from each table's own sequence up front, so that rows can
    reference each other before they are written and other writers never collide.

    Foreign keys: PostgreSQL checks each reference with a trigger per row (and
    locks the row referred to), which costs more than the COPY itself. Where it
    may (a superuser, and no INSERT trigger of ours on these tables that would
    be skipped too), the writer turns those per-row triggers off for the batch
    (``session_replication_role = replica``) and checks every reference of the
    batch with one anti-join per table before it commits instead, as
    ``pg_restore`` loads data before its constraints. Otherwise the rows are
    checked one by one as usual.
    """

    def __init__(self, *, per_row_checks: bool = False):
        self.pg = connection.vendor == "postgresql"
        self.batch_checks = self.pg and not per_row_checks and self._may_check_per_batch()

    @staticmethod
    def _may_check_per_batch() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cursor.fetchone()
            if not (row and row[0]):
                return False
            # tgtype bit 2 (4) marks an INSERT trigger; internal ones are the foreign keys themselves.
            cursor.execute(
                "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE c.relname = ANY(%s) AND NOT t.tgisinternal AND (t.tgtype & 4) <> 0",
                [[t.name for t in TABLES]],
            )
            return cursor.fetchone()[0] == 0

    def begin_batch(self) -> None:
        if not self.pg:
            return
        with connection.cursor() as cursor:
            # Times are written as UTC text; losing the last batches in a crash is harmless here.
            cursor.execute("SET LOCAL TIME ZONE 'UTC'")
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            if self.batch_checks:
                cursor.execute("SET LOCAL session_replication_role TO replica")

    def end_batch(self, ranges: dict[str, tuple[str, int, int]]) -> None:
        """Check every reference of the rows just written (``table -> (key column, low, high)``)."""
        if not self.batch_checks:
            return
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role TO origin")
            for table, (key, low, high) in ranges.items():
                references = REFERENCES[table]
                # Built from the models' own table and column names only.
                counts = ", ".join(
                    f"count(*) FILTER (WHERE x.{column} IS NOT NULL AND NOT EXISTS "  # noqa: S608
                    f"(SELECT 1 FROM {target} r WHERE r.{target_column} = x.{column}))"
                    for column, target, target_column in references
                )
                cursor.execute(f"SELECT {counts} FROM {table} x WHERE x.{key} BETWEEN %s AND %s", [low, high])  # noqa: S608
                broken = [ref[0] for ref, n in zip(references, cursor.fetchone(), strict=True) if n]
                if broken:
                    raise GenerationError(f"Generated rows of {table} refer to missing rows ({', '.join(broken)}).")

    def ids(self, table: _Table, count: int) -> list[int]:
        if self.pg:
            return next_ids(table.name, count)
        if count == 0:
            return []
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table.name}")  # noqa: S608 - a constant name
            start = cursor.fetchone()[0] + 1
            return list(range(start, start + count))

    def store(self, rows: tuple[list[str], ...], ranges: dict[str, tuple[str, int, int]]) -> None:
        """One batch, in one transaction: every table in reference order, then the checks."""
        with transaction.atomic():
            self.begin_batch()
            for table, lines in zip(TABLES, rows, strict=True):
                self.write(table, lines)
            self.end_batch(ranges)

    def write(self, table: _Table, lines: list[str]) -> None:
        if not lines:
            return
        columns = ", ".join(table.columns)
        with connection.cursor() as cursor:
            if self.pg:
                cursor.copy_expert(f"COPY {table.name} ({columns}) FROM STDIN", io.StringIO("".join(lines)))
                return
            bools = {table.columns.index(name) for name in table.bools}
            rows = []
            for line in lines:
                values: list = line.rstrip("\n").split("\t")
                for i, value in enumerate(values):
                    if value == NULL:
                        values[i] = None
                    elif i in bools:
                        values[i] = value == "t"
                    else:
                        values[i] = _unesc(value)
                rows.append(values)
            marks = ", ".join(["%s"] * len(table.columns))
            cursor.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)  # noqa: S608


# "HH:MM:SS" for every second of a day: formatting ten million timestamps is then a lookup.
_CLOCK_FACE = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]


class _Clock:
    """Local wall-clock seconds to UTC, and UTC seconds to the text the database and snapshots take."""

    def __init__(self):
        self.zone = timezone.get_current_timezone()
        self._offsets: dict[int, int] = {}
        self._days: dict[int, str] = {}

    def offset(self, day: int) -> int:
        offset = self._offsets.get(day)
        if offset is None:
            noon = datetime(1970, 1, 1, 12) + timedelta(days=day)
            offset = int(noon.replace(tzinfo=self.zone).utcoffset().total_seconds())
            self._offsets[day] = offset
        return offset

    def utc(self, local: int) -> int:
        return local - self.offset(local // DAY)

    def local(self, utc: int) -> int:
        return utc + self.offset(utc // DAY)

    def _day(self, day: int) -> str:
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        return text

    def text(self, utc: int) -> str:
        day, rest = divmod(utc, DAY)
        return f"{self._days.get(day) or self._day(day)} {_CLOCK_FACE[rest]}"

    def iso(self, utc: int) -> str:
        day, rest = divmod(utc, DAY)
        return f"{self._days.get(day) or self._day(day)}T{_CLOCK_FACE[rest]}+00:00"

    @staticmethod
    def dt(utc: int) -> datetime:
        return EPOCH + timedelta(seconds=utc)

    @staticmethod
    def seconds(value: datetime | None) -> int | None:
        return None if value is None else int((value - EPOCH).total_seconds())


@dataclass
class GenerationSummary:
    seed: int
    until: date
    episodes: int = 0
    events: int = 0
    quantities: int = 0
    detections: int = 0
    variances: int = 0
    revisions: int = 0
    episodes_with_variance: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_pathway: Counter = field(default_factory=Counter)
    by_type: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        share = self.episodes_with_variance / self.episodes if self.episodes else 0
        return [
            f"Episodes: {self.episodes:,} ("
            + ", ".join(f"{code} {n:,}" for code, n in sorted(self.by_pathway.items()))
            + "; "
            + ", ".join(f"{status} {n:,}" for status, n in sorted(self.by_status.items()))
            + ")",
            f"Events: {self.events:,} (with actual quantities: {self.quantities:,})",
            f"Variances: {self.variances:,} in {self.episodes_with_variance:,} episodes ({share:.0%}); "
            + ", ".join(f"{t} {n:,}" for t, n in self.by_type.most_common()),
            f"Detections: {self.detections:,}; variance revisions: {self.revisions:,}",
            f"Seconds: {self.seconds:.1f}; events per second: {self.events_per_second:,.0f}",
        ]


# --- documentation: what clinicians and leads added --------------------------------------------------


class _Documenter:
    """Reasons, causes and reviews for variances, and each variance's revisions."""

    def __init__(self, rng: random.Random, clock: _Clock, cutoff_utc: int):
        self.rng = rng
        self.clock = clock
        self.cutoff = cutoff_utc
        reasons = ReasonCode.objects.filter(retired=False, pathway__isnull=True)
        self.reasons = {r.code: (r.pk, r.default_cause or "system") for r in reasons}
        self._choices: dict[tuple, _Choice] = {}
        self._valence = {t: _Choice(pairs) for t, pairs in VALENCE.items()}
        self._negative = _Choice(NEGATIVE)
        self._actions = ACTIONS

    def _reason(self, variance_type: str, step_code: str | None, step_type: str | None, profile: PathwayProfile):
        key = (variance_type, step_code, step_type, id(profile))
        choice = self._choices.get(key)
        if choice is None:
            step_profile = profile.steps.get(step_code) if step_code else None
            pairs = (
                (step_profile.reasons.get(variance_type) if step_profile else None)
                or REASONS.get((variance_type, step_type))
                or REASONS.get((variance_type, None))
                or REASONS[("delay", None)]
            )
            choice = self._choices[key] = _Choice([(code, w) for code, w in pairs if code in self.reasons])
        return choice(self.rng) if choice else None

    def explain(self, state: dict, *, at: int, by: int | None, ctx: tuple) -> None:
        rng = self.rng
        variance_type, step_code, step_type, profile = ctx
        code = self._reason(variance_type, step_code, step_type, profile)
        if code is None:
            return
        reason_id, cause = self.reasons[code]
        if rng.random() < 0.12:
            cause = ("patient", "clinician", "system", "community")[int(rng.random() * 4)]
        valence = self._valence.get(variance_type, self._negative)(rng)
        state.update(
            cause=cause,
            reason_id=reason_id,
            valence=valence,
            rationale=state["rationale"] or RATIONALE.get(code, ""),
            action_taken=self._actions[int(rng.random() * len(self._actions))],
            status=Status.DOCUMENTED,
            documented_at=at,
        )
        if state["recorded_by_id"] is None:
            state["recorded_by_id"] = by

    def review(self, state: dict, *, at: int, by: int) -> None:
        rng = self.rng
        cause = state["cause"] or "system"
        justified = rng.random() < JUSTIFIED.get(cause, 0.8)
        state.update(
            justified=justified,
            avoidable=rng.random() < AVOIDABLE.get(cause, 0.5),
            review_comment="" if justified else "Not justified on review; discussed at the team's governance meeting.",
            reviewed_by_id=by,
            reviewed_at=at,
            status=Status.REVIEWED,
        )

    def later(self, at: int, median_hours: float, sigma: float) -> int | None:
        """A time after ``at`` (lognormal delay), or None if it falls after the cutoff."""
        when = at + int(median_hours * HOUR * self.rng.lognormvariate(0, sigma))
        return when if when <= self.cutoff else None

    def lifecycle(
        self, state: dict, *, created_at: int, created_reason: str, documented: bool, clinician, lead, ctx
    ) -> list[tuple[int, int | None, int, str, dict]]:
        """Revisions ``(number, changed_by, at, reason, snapshot)`` of one variance; ``state`` ends current."""
        rng = self.rng
        revisions = []

        def append(by, at, reason):
            snapshot = {
                k: (self.clock.iso(v) if k in SNAPSHOT_DATETIME_FIELDS and v is not None else v)
                for k, v in state.items()
            }
            revisions.append((state["revision"], by, at, reason, snapshot))

        if documented:
            self.explain(state, at=created_at, by=clinician, ctx=ctx)
        append(state["recorded_by_id"], created_at, created_reason)
        # Old departures have nearly all been explained by now; the backlog is mostly recent.
        explaining = 0.97 if created_at < self.cutoff - 60 * DAY else 0.8
        if state["status"] == Status.UNEXPLAINED and rng.random() < explaining:
            at = self.later(created_at, 8, 1.4)
            if at is not None:
                self.explain(state, at=at, by=clinician, ctx=ctx)
                if state["status"] == Status.DOCUMENTED:
                    state["revision"] += 1
                    append(clinician, at, "explained")
        reviewing = 0.85 if state["review_required"] else 0.35
        if state["status"] == Status.DOCUMENTED and lead is not None and rng.random() < reviewing:
            at = self.later(state["documented_at"], 72, 0.8)
            if at is not None:
                self.review(state, at=at, by=lead)
                state["revision"] += 1
                append(lead, at, "reviewed")
        return revisions


def _new_state(**values) -> dict:
    state = dict.fromkeys(SNAPSHOT_FIELDS)
    state.update(
        resource_id=None, cause="", reason_id=None, valence="", level=Variance.Level.PROCESS, rationale="",
        action_taken="", recorded_by_id=None, documented_at=None, status=Status.UNEXPLAINED, detection_id=None,
        reviewed_by_id=None, reviewed_at=None, review_comment="", withdrawn_reason="", revision=1,
    )  # fmt: skip
    state.update(values)
    return state


# --- a batch of episodes -------------------------------------------------------------------------------


class _Batch:
    """Turns drafts into rows: ids, detection by the product's rules, documentation, COPY lines."""

    def __init__(
        self,
        *,
        seed: int,
        writer: _Writer,
        clock: _Clock,
        documenter: _Documenter,
        cutoff_utc: int,
        store: Callable[[Callable[[], None]], None],
    ):
        self.store = store
        self.seed = seed
        self.writer = writer
        self.clock = clock
        self.doc = documenter
        self.cutoff = cutoff_utc
        self.now = clock.dt(cutoff_utc)
        self.codes = {}
        self.criticality = {}

    def flush(self, drafts: list[_Draft], summary: GenerationSummary) -> None:
        if not drafts:
            return
        clock, writer, doc, rng = self.clock, self.writer, self.doc, self.doc.rng
        text = clock.text
        episode_ids = writer.ids(EPISODES, len(drafts))
        event_ids = iter(writer.ids(EVENTS, sum(len(d.events) for d in drafts)))
        for draft, episode_id in zip(drafts, episode_ids, strict=True):
            draft.id = episode_id
            for event in draft.events:
                event.id = next(event_ids)
                event.at_utc = clock.utc(event.at)
                event.recorded_utc = clock.utc(event.recorded)

        # Detection: the product's rules on each episode's events.
        found: list[tuple[_Draft, list]] = []
        detections = 0
        for draft in drafts:
            specs = draft.version.specs
            if not self.codes.get(draft.version.version_id):
                self.codes[draft.version.version_id] = {s.id: s for s in draft.version.steps}
            facts = [EventFact(e.id, e.step_id, e.activity, EPOCH + timedelta(seconds=e.at_utc)) for e in draft.events]
            findings = detect(
                specs,
                started_at=clock.dt(clock.utc(draft.start)),
                ended_at=clock.dt(clock.utc(draft.end)) if draft.end is not None else None,
                status=draft.status,
                events=facts,
                now=self.now,
            )
            found.append((draft, findings))
            detections += len(findings)
        detection_list = writer.ids(DETECTIONS, detections)
        variance_list = writer.ids(VARIANCES, detections + sum(len(d.recorded) for d in drafts))
        detection_ids, variance_ids = iter(detection_list), iter(variance_list)

        episodes, events, quantities, detection_rows, variance_rows, revision_rows = [], [], [], [], [], []
        for draft, findings in found:
            steps = self.codes[draft.version.version_id]
            profile = draft.pathway.profile
            clinician, lead = draft.clinician_id, draft.lead_id
            start_utc = clock.utc(draft.start)
            end_utc = clock.utc(draft.end) if draft.end is not None else None
            created = min(start_utc + _between(rng, MINUTE, 10 * MINUTE), self.cutoff)
            changed = [created]
            writes = 1
            recorded_at: dict[int, int] = {}
            for k, event in enumerate(draft.events):
                rec = event.recorded_utc
                recorded_at[event.id] = rec
                external = f"SYN{self.seed}-{draft.index}-{k}" if event.source != MANUAL else ""
                events.append(
                    f"{event.id}\t{draft.id}\t{_n(event.step_id)}\t{_esc(event.activity)}\t{text(event.at_utc)}"
                    f"\t{text(rec)}\t{_n(event.recorded_by)}\t\t{event.source}\t{external}\n"
                )
                if event.quantities:
                    for resource_id, qty, headcount, unit_cost in event.quantities:
                        quantities.append(f"{event.id}\t{resource_id}\t{qty}\t{headcount}\t{_n(unit_cost)}\n")
                    summary.quantities += 1
            if draft.events:
                changed.append(max(recorded_at.values()))
                writes += len(draft.events)
            if end_utc is not None:
                changed.append(min(end_utc + _between(rng, MINUTE, 30 * MINUTE), self.cutoff))
                writes += 1

            variances = 0
            for finding in findings:
                detection_id = next(detection_ids)
                step = steps.get(finding.step_id)
                due_from, due_by = clock.seconds(finding.due_from), clock.seconds(finding.due_by)
                happened = clock.seconds(finding.happened_at)
                if finding.event_id is not None:
                    basis = recorded_at[finding.event_id]
                elif due_by is not None and (end_utc is None or due_by <= end_utc):
                    basis = due_by
                else:
                    basis = end_utc if end_utc is not None else self.cutoff
                detected = min(basis + _between(rng, 0, 15 * MINUTE), self.cutoff)
                detection_rows.append(
                    f"{detection_id}\t{draft.id}\t{_n(finding.step_id)}\t{_n(finding.event_id)}\t"
                    f"{finding.variance_type}\t{_esc(finding.key)}\t{text(detected)}\t"
                    f"{text(due_from) if due_from is not None else NULL}\t{text(due_by) if due_by is not None else NULL}\t"
                    f"{text(happened) if happened is not None else NULL}\t{_n(finding.minutes_outside)}\n"
                )
                occurred = happened or due_by or end_utc or detected
                review = finding.variance_type == Type.OMISSION and (
                    step is not None and step.criticality >= CRITICAL_STEP_CRITICALITY
                )
                state = _new_state(
                    episode_id=draft.id, step_id=finding.step_id, variance_type=finding.variance_type,
                    occurred_at=occurred, recorded_at=detected, detection_id=detection_id, review_required=review,
                )  # fmt: skip
                ctx = (finding.variance_type, step.code if step else None, step.step_type if step else None, profile)
                revisions = doc.lifecycle(
                    state, created_at=detected, created_reason="detected", documented=False,
                    clinician=clinician, lead=lead, ctx=ctx,
                )  # fmt: skip
                self._rows(next(variance_ids), state, revisions, variance_rows, revision_rows, summary)
                changed.append(revisions[-1][2])
                writes += len(revisions)
                variances += 1
            for recorded in draft.recorded:
                step = steps.get(recorded.step_id)
                at = clock.utc(recorded.recorded)
                exit_ = recorded.variance_type == Type.EXIT
                state = _new_state(
                    episode_id=draft.id, step_id=recorded.step_id, resource_id=recorded.resource_id,
                    variance_type=recorded.variance_type, occurred_at=clock.utc(recorded.at), recorded_at=at,
                    recorded_by_id=clinician, rationale=recorded.rationale, review_required=exit_,
                )  # fmt: skip
                ctx = (recorded.variance_type, step.code if step else None, recorded.step_type, profile)
                revisions = doc.lifecycle(
                    state, created_at=at, created_reason="episode exited" if exit_ else "recorded",
                    documented=recorded.documented, clinician=clinician, lead=lead, ctx=ctx,
                )  # fmt: skip
                self._rows(next(variance_ids), state, revisions, variance_rows, revision_rows, summary)
                changed.append(revisions[-1][2])
                writes += len(revisions)
                variances += 1
            summary.detections += len(findings)
            summary.episodes_with_variance += 1 if variances else 0
            summary.by_status[draft.status] += 1
            summary.by_pathway[draft.pathway.code] += 1
            episodes.append(
                f"{draft.id}\tSYN{self.seed}-{draft.index:07d}\t{draft.version.version_id}\t{draft.unit_id}\t"
                f"{_n(clinician)}\t{text(start_utc)}\t{text(end_utc) if end_utc is not None else NULL}\t"
                f"{draft.status}\t{_esc(draft.exit_reason)}\t{draft.destination}\t{_b(draft.readmitted)}\t"
                f"{_b(draft.complication)}\t{text(created)}\t{text(max(changed))}\t{writes}\n"
            )
        summary.episodes += len(drafts)
        summary.events += len(events)
        all_events = [e.id for d in drafts for e in d.events]
        ranges = {EPISODES.name: ("id", min(episode_ids), max(episode_ids))}
        for table, key, ids in (
            (EVENTS, "id", all_events),
            (QUANTITIES, "event_id", all_events),
            (DETECTIONS, "id", detection_list),
            (VARIANCES, "id", variance_list),
            (REVISIONS, "variance_id", variance_list),
        ):
            if ids:
                ranges[table.name] = (key, min(ids), max(ids))
        rows = (episodes, events, quantities, detection_rows, variance_rows, revision_rows)
        self.store(lambda: writer.store(rows, ranges))

    def _rows(self, variance_id, state, revisions, variance_rows, revision_rows, summary) -> None:
        text = self.clock.text
        values = [str(variance_id)]
        for name in SNAPSHOT_FIELDS:
            value = state[name]
            if name in SNAPSHOT_DATETIME_FIELDS:
                values.append(text(value) if value is not None else NULL)
            elif isinstance(value, bool) or value is None:
                values.append(_b(value))
            elif isinstance(value, str):
                values.append(_esc(value))
            else:
                values.append(str(value))
        variance_rows.append("\t".join(values) + "\n")
        for number, by, at, reason, snapshot in revisions:
            document = json.dumps(snapshot, separators=(",", ":"))
            revision_rows.append(f"{variance_id}\t{number}\t{_n(by)}\t{text(at)}\t{reason}\t{_esc(document)}\n")
        summary.variances += 1
        summary.revisions += len(revisions)
        summary.by_type[state["variance_type"]] += 1


# --- arrivals ------------------------------------------------------------------------------------------


def _day_weights(profile: PathwayProfile, first_day: int, days: int) -> list[float]:
    """How likely an episode of this pathway starts on each day (weekday, season, holidays, growth)."""
    weekdays = ELECTIVE_WEEKDAYS if profile.elective else EMERGENCY_WEEKDAYS
    weights = []
    for offset in range(days):
        day = first_day + offset
        when = date(1970, 1, 1) + timedelta(days=day)
        weight = weekdays[when.weekday()]
        weight *= 1 + profile.winter * math.cos(2 * math.pi * (when.month - 1) / 12)
        if profile.elective:
            if (when.month == 12 and when.day >= 24) or (when.month == 1 and when.day == 1):
                weight *= 0.1  # no elective lists over Christmas
            elif when.month == 8:
                weight *= 0.85  # summer leave
        weight *= 1 + GROWTH_PER_YEAR * offset / 365
        weights.append(max(weight, 0.0))
    return weights


def _start_seconds(rng: random.Random, profile: PathwayProfile, hours: _Choice) -> int:
    """Seconds after local midnight: elective lists in the morning, emergencies around the clock."""
    if profile.elective:
        base = 7 * HOUR if rng.random() < 0.8 else 12 * HOUR
        return base + _between(rng, 0, 90 * MINUTE)
    return hours(rng) * HOUR + _between(rng, 0, HOUR - 1)


def _arrivals(plans: list[_PathwayPlan], episodes: int, *, first_day: int, span: int, rng: random.Random):
    """``(start, plan)`` of every episode in time order: exactly ``episodes``, split by pathway share."""
    shares = [plan.profile.share for plan in plans]
    counts = [int(episodes * s) for s in shares]
    for i in sorted(range(len(plans)), key=lambda i: -(episodes * shares[i] - counts[i]))[: episodes - sum(counts)]:
        counts[i] += 1
    per_day: list[Counter] = []
    for plan, count in zip(plans, counts, strict=True):
        weights = _cumulative(_day_weights(plan.profile, first_day, span))
        per_day.append(Counter(rng.choices(range(span), cum_weights=weights, k=count)) if count else Counter())
    hours = _Choice(enumerate(EMERGENCY_HOURS))
    for offset in range(span):
        midnight = (first_day + offset) * DAY
        day = [
            (midnight + _start_seconds(rng, plan.profile, hours), plan.code, plan)
            for plan, days in zip(plans, per_day, strict=True)
            for _ in range(days.get(offset, 0))
        ]
        day.sort(key=lambda arrival: arrival[:2])
        for start, _code, plan in day:
            yield start, plan


def generate(
    *,
    episodes: int,
    seed: int = 1,
    until: date | None = None,
    years: int = 5,
    batch_events: int = BATCH_EVENTS,
    progress: Callable[[GenerationSummary, int], None] | None = None,
) -> GenerationSummary:
    """Generate ``episodes`` episodes starting over ``years`` years before ``until`` (default: today).

    Everything in the data happened before local midnight at the start of
    ``until``; episodes not finished by then are active. Refuses to run twice
    for a seed on the same database (patient references would collide).
    """
    if episodes < 1:
        raise GenerationError("Ask for at least one episode.")
    if seed < 0:
        raise GenerationError("The seed is a number from 0 up.")
    until = until or timezone.localdate()
    prefix = f"SYN{seed}-"
    if Episode.objects.filter(patient_ref__startswith=prefix).exists():
        raise GenerationError(
            f"Episodes for seed {seed} already exist (patient references {prefix}...). "
            "Use another seed, or a fresh database."
        )
    began = time.perf_counter()
    rng = random.Random(seed)
    clock = _Clock()
    cutoff_day = (until - date(1970, 1, 1)).days
    cutoff = cutoff_day * DAY  # local midnight
    cutoff_utc = clock.utc(cutoff)
    span = max(1, round(years * 365.25))
    first_day = cutoff_day - span
    with transaction.atomic():
        plans = load_plans(episodes=episodes, first_day=first_day, cutoff_day=cutoff_day)

    maker = _EpisodeMaker(rng, cutoff=cutoff, seed=seed)
    writer = _Writer()
    # Overlap generating and storing on PostgreSQL; store inline inside a caller's transaction (tests),
    # which a second connection could not see, and on SQLite.
    pipeline = BackgroundWriter("generate-demo-writer") if writer.pg and not connection.in_atomic_block else None
    batch = _Batch(
        seed=seed,
        writer=writer,
        clock=clock,
        documenter=_Documenter(rng, clock, cutoff_utc),
        cutoff_utc=cutoff_utc,
        store=pipeline.put if pipeline is not None else (lambda job: job()),
    )
    summary = GenerationSummary(seed=seed, until=until)
    drafts: list[_Draft] = []
    waiting = 0
    try:
        arrivals = _arrivals(plans, episodes, first_day=first_day, span=span, rng=rng)
        for index, (start, plan) in enumerate(arrivals, start=1):
            draft = maker.make(plan, start, index)
            drafts.append(draft)
            waiting += len(draft.events)
            if waiting >= batch_events:
                batch.flush(drafts, summary)
                drafts, waiting = [], 0
                summary.seconds = time.perf_counter() - began
                if progress is not None:
                    progress(summary, episodes)
        batch.flush(drafts, summary)
    finally:
        if pipeline is not None:
            pipeline.close()  # waits for the last batch; re-raises its error, if any
    with transaction.atomic():
        audit_record(
            action="demo.generate",
            actor=None,
            detail={
                "seed": seed,
                "until": until.isoformat(),
                "years": years,
                "episodes": summary.episodes,
                "events": summary.events,
                "variances": summary.variances,
            },
        )
    if writer.pg:
        with connection.cursor() as cursor:
            # Fresh statistics, so that the first report plans its joins on the real sizes.
            cursor.execute("ANALYZE " + ", ".join(t.name for t in TABLES))
    summary.seconds = time.perf_counter() - began
    if progress is not None:
        progress(summary, episodes)
    return summary
