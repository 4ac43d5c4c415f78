"""Test data for the costing engine and reports.

- ``record_knee_actuals``: the DOMAIN.md knee example's actual episode, recorded through
  the same services the browser and API use (``variances.services``).
- ``generate_dataset``: many closed episodes on two small pathways, written in bulk with
  the ORM (fast enough for thousands of episodes), with a seeded random mix of events,
  quantities, dearer prices, lengths of stay, variances and outcomes. The tests compute
  the expected report figures from the same rows in plain Python, independently of
  ``costing.reports``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import time_machine
from django.utils import timezone

from costing.rates import cost_rate_set
from pathways.models import Pathway, PathwayVersion, PlannedResource, Resource, Stage, Step
from tests.pathways.tkr import build_tkr
from variances import services
from variances.models import Detection, Episode, EventQuantity, ReasonCode, StepEvent, Variance
from variances.reasons import seed_base_reasons

LONDON = ZoneInfo("Europe/London")


def reason(code: str) -> ReasonCode:
    seed_base_reasons(ReasonCode)  # a transactional test's flush empties the seeded table
    return ReasonCode.objects.get(code=code, pathway__isnull=True)


def at(y, m, d, hh=9, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=LONDON)


def knee_episode(org: dict, clinician) -> tuple[dict, Episode]:
    """The TKR pathway (FY 2025 rates) and the knee example's closed episode on Ward 7: ``(tkr, episode)``."""
    tkr = build_tkr(org["ORTHO"], financial_year=2025)
    with time_machine.travel(at(2025, 7, 1), tick=False):
        episode = record_knee_actuals(tkr, unit=org["ORTHO-W7"], clinician=clinician, started_at=at(2025, 6, 2, 8))
    return tkr, episode


def active_knee_episode(org: dict, clinician, *, surgery_minutes: str | None = None) -> tuple[dict, Episode]:
    """A knee episode started on 2 June 2025 at 08:00, still on the ward; surgery done at 13:00 with
    ``surgery_minutes`` of theatre if given. Read it under ``time_machine`` on 3 June (one night)."""
    tkr = build_tkr(org["ORTHO"], financial_year=2025)
    with time_machine.travel(at(2025, 6, 3, 12), tick=False):
        episode = services.episode_start(
            pathway_version=tkr["version"],
            patient_ref="PT-ACTIVE",
            org_unit=org["ORTHO-W7"],
            responsible_clinician=clinician,
            started_at=at(2025, 6, 2, 8),
            actor=clinician,
        )
        if surgery_minutes is not None:
            services.event_record(
                episode=episode,
                step=tkr["SURGERY"],
                occurred_at=at(2025, 6, 2, 13),
                source="manual",
                quantities=[{"resource": "THEATRE", "quantity": surgery_minutes}],
                actor=clinician,
            )
    return tkr, episode


def record_variance(episode: Episode, step, kind: str, *, cause: str, reason_code: str, rationale: str, at, actor):
    """A documented variance, recorded through the service as the browser and API do."""
    valence = Variance.Valence.NEGATIVE if cause == Variance.Cause.SYSTEM else Variance.Valence.NEUTRAL
    return services.variance_record(
        episode=episode,
        step=step,
        variance_type=kind,
        cause=cause,
        reason=reason(reason_code),
        valence=valence,
        rationale=rationale,
        occurred_at=at,
        actor=actor,
    )


def record_knee_actuals(tkr: dict, *, unit, clinician, started_at: datetime, ref: str = "PT-KNEE1") -> Episode:
    """The knee example's actual episode (DOMAIN.md section 4).

    Surgery took 120 minutes for theatre, consultant and 2 theatre nurses (clinician
    cause); the implant cost 2,200 (system cause: supplier substitution); the stay was
    5 days (system cause: awaiting social care); 3 physio sessions.
    """
    actor = clinician
    episode = services.episode_start(
        pathway_version=tkr["version"],
        patient_ref=ref,
        org_unit=unit,
        responsible_clinician=clinician,
        started_at=started_at,
        actor=actor,
    )

    def event(code, minutes_after, quantities=()):
        return services.event_record(
            episode=episode,
            step=tkr[code],
            occurred_at=started_at + timedelta(minutes=minutes_after),
            source="manual",
            quantities=quantities,
            actor=actor,
        )

    event("PREOP", 30)
    surgery = event(
        "SURGERY",
        240,
        [
            {"resource": "THEATRE", "quantity": "120"},
            {"resource": "CONSULTANT", "quantity": "120"},
            {"resource": "THEATRE-NURSE", "quantity": "120", "headcount": 2},
            {"resource": "IMPLANT", "quantity": "1", "unit_cost": "2200"},
        ],
    )
    for day in (1, 2, 3):
        event("PHYSIO", day * 24 * 60)
    services.variance_record(
        episode=episode,
        step=tkr["SURGERY"],
        resource=tkr["IMPLANT"],
        variance_type=Variance.Type.SUBSTITUTION,
        cause=Variance.Cause.SYSTEM,
        reason=reason("service-not-available"),
        valence=Variance.Valence.NEUTRAL,
        rationale="Supplier substituted a dearer implant.",
        occurred_at=surgery.occurred_at,
        actor=actor,
    )
    services.variance_record(
        episode=episode,
        step=tkr["SURGERY"],
        variance_type=Variance.Type.OVERRIDE,
        cause=Variance.Cause.CLINICIAN,
        reason=reason("mitigate-risk-negative-outcome"),
        valence=Variance.Valence.NEUTRAL,
        rationale="Complex revision anatomy: surgery took 120 minutes.",
        occurred_at=surgery.occurred_at,
        actor=actor,
    )
    services.variance_record(
        episode=episode,
        step=tkr["WARD-STAY"],
        variance_type=Variance.Type.DELAY,
        cause=Variance.Cause.SYSTEM,
        reason=reason("inadequate-support"),
        valence=Variance.Valence.NEGATIVE,
        rationale="Awaiting social care package.",
        occurred_at=started_at + timedelta(days=3),
        actor=actor,
    )
    return services.episode_close(
        episode=episode,
        ended_at=started_at + timedelta(days=5),
        discharge_destination="usual-residence",
        readmitted_30d=False,
        complication=False,
        actor=actor,
    )


# --- generated data set ------------------------------------------------------------------


def simple_pathway(code: str, unit, *, resources: dict, steps: list, financial_year: int = 2025) -> dict:
    """A published pathway from plain data.

    ``resources``: {code: (kind, unit, salaried, rate)};
    ``steps``: [(code, per_day, expected_count, [(resource code, quantity, headcount)])].
    """
    out: dict = {}
    for rcode, (kind, runit, salaried, rate) in resources.items():
        resource, _ = Resource.objects.get_or_create(
            code=rcode, defaults={"name": rcode.title(), "kind": kind, "unit": runit, "salaried": salaried}
        )
        cost_rate_set(resource=resource, financial_year=financial_year, rate=Decimal(rate), source="test", actor=None)
        out[rcode] = resource
    pathway = Pathway.objects.create(code=code, name=f"{code} pathway", owner_unit=unit)
    version = PathwayVersion.objects.create(
        pathway=pathway,
        number=1,
        status=PathwayVersion.Status.PUBLISHED,
        published_at=timezone.now(),
    )
    stage = Stage.objects.create(version=version, order=1, name="All")
    for order, (scode, per_day, count, planned) in enumerate(steps):
        step = Step.objects.create(
            version=version,
            stage=stage,
            order=order,
            code=scode,
            name=scode.title(),
            per_day=per_day,
            expected_count=Decimal(str(count)),
            step_type=Step.Type.STAY if per_day else Step.Type.PROCEDURE,
        )
        for rcode, quantity, headcount in planned:
            PlannedResource.objects.create(
                step=step, resource=out[rcode], quantity=Decimal(str(quantity)), headcount=headcount
            )
        out[scode] = step
    out["pathway"] = pathway
    out["version"] = version
    return out


def two_pathways(unit, *, financial_year: int = 2025) -> tuple[dict, dict]:
    """HIP (3 steps, one per-day) and GALL (2 steps) sharing a salaried surgeon."""
    from pathways.models import Resource as R

    hip = simple_pathway(
        "HIP",
        unit,
        resources={
            "SURGEON": (R.Kind.STAFF, R.Unit.MINUTE, True, "2.000000"),
            "BED": (R.Kind.BED_DAY, R.Unit.DAY, False, "200"),
            "PROSTHESIS": (R.Kind.CONSUMABLE, R.Unit.ITEM, False, "1500"),
        },
        steps=[
            ("OP", False, 1, [("SURGEON", 60, 1), ("PROSTHESIS", 1, 1)]),
            ("STAY", True, 4, [("BED", 1, 1)]),
            ("REVIEW", False, 1, [("SURGEON", 15, 1)]),
        ],
        financial_year=financial_year,
    )
    gall = simple_pathway(
        "GALL",
        unit,
        resources={"SURGEON": (R.Kind.STAFF, R.Unit.MINUTE, True, "2.000000")},
        steps=[("LAP", False, 1, [("SURGEON", 45, 1)]), ("CHECK", False, 1, [("SURGEON", 10, 1)])],
        financial_year=financial_year,
    )
    return hip, gall


@dataclass
class Dataset:
    pathways: list[dict]
    episodes: list[Episode] = field(default_factory=list)
    units: list = field(default_factory=list)
    clinicians: list = field(default_factory=list)


CAUSES = ["patient", "clinician", "system", "community"]


def generate_dataset(
    *,
    pathways: list[dict],
    units: list,
    clinicians: list,
    n: int,
    seed: int = 7,
    start: datetime | None = None,
    days: int = 300,
    active_share: float = 0.1,
) -> Dataset:
    """``n`` episodes over ``days`` days, in bulk. About a third carry variances."""
    rng = random.Random(seed)
    start = start or at(2025, 4, 1)
    seed_base_reasons(ReasonCode)
    reasons = list(ReasonCode.objects.filter(pathway__isnull=True, retired=False).order_by("code")[:6])
    now = timezone.now()
    episodes = []
    for i in range(n):
        pathway = rng.choice(pathways)
        started = start + timedelta(days=rng.randrange(days), hours=rng.randrange(0, 12))
        active = rng.random() < active_share
        stay = rng.choice([2, 3, 4, 4, 5, 6, 9])
        episodes.append(
            Episode(
                patient_ref=f"PT-{seed:02d}{i:06d}",
                version=pathway["version"],
                org_unit=rng.choice(units),
                responsible_clinician=rng.choice(clinicians),
                started_at=started,
                ended_at=None if active else started + timedelta(days=stay),
                status=Episode.Status.ACTIVE if active else Episode.Status.COMPLETED,
                readmitted_30d=None if active else rng.random() < 0.15,
                updated_at=now,
            )
        )
    Episode.objects.bulk_create(episodes, batch_size=2000)
    episodes = list(
        Episode.objects.filter(patient_ref__startswith=f"PT-{seed:02d}").select_related("version").order_by("pk")
    )
    steps_of = {
        p["version"].pk: list(p["version"].steps.prefetch_related("planned_resources__resource").order_by("order"))
        for p in pathways
    }
    events, quantities, detections, variances = [], [], [], []
    for episode in episodes:
        steps = steps_of[episode.version_id]
        with_variance = rng.random() < 0.35
        for step in steps:
            if step.per_day:
                continue
            if with_variance and rng.random() < 0.15:
                continue  # omitted
            repeats = 2 if with_variance and rng.random() < 0.2 else 1
            for r in range(repeats):
                event = StepEvent(
                    episode=episode,
                    step=step,
                    occurred_at=episode.started_at + timedelta(hours=2 + r),
                    source=StepEvent.Source.IMPORT,
                )
                events.append(event)
                if with_variance and rng.random() < 0.4:
                    planned = list(step.planned_resources.all())
                    pr = rng.choice(planned)
                    qty = pr.quantity * Decimal(rng.choice(["0.5", "1.5", "2"]))
                    unit_cost = Decimal(rng.choice(["1800", "2100.50"])) if pr.resource.kind == "consumable" else None
                    quantities.append((event, pr.resource, qty, unit_cost))
        if with_variance:
            for _ in range(rng.choice([1, 1, 2])):
                step = rng.choice(steps)
                kind = rng.choice(["delay", "omission", "substitution", "delay", "early"])
                status = rng.choice(["unexplained", "documented", "reviewed", "reviewed"])
                detected = rng.random() < 0.6
                occurred = episode.started_at + timedelta(hours=3)
                variance = Variance(
                    episode=episode,
                    step=step,
                    variance_type=kind,
                    cause="" if status == "unexplained" else rng.choice(CAUSES),
                    reason=None if status == "unexplained" else rng.choice(reasons),
                    valence="" if status == "unexplained" else rng.choice(["positive", "negative", "neutral"]),
                    occurred_at=occurred,
                    status=status,
                    documented_at=None
                    if status == "unexplained"
                    else occurred + timedelta(hours=rng.choice([2, 30, 200])),
                    justified=None if status != "reviewed" else rng.random() < 0.7,
                )
                if detected:
                    detections.append((variance, Detection(
                        episode=episode, step=step, variance_type=kind,
                        key=f"{kind}:{step.code}:{len(detections)}", detected_at=occurred + timedelta(hours=1),
                    )))  # fmt: skip
                variances.append(variance)
    StepEvent.objects.bulk_create(events, batch_size=5000)
    EventQuantity.objects.bulk_create(
        [EventQuantity(event=e, resource=r, quantity=q, unit_cost=c) for e, r, q, c in quantities], batch_size=5000
    )
    Detection.objects.bulk_create([d for _, d in detections], batch_size=5000)
    for variance, detection in detections:
        variance.detection = detection
    Variance.objects.bulk_create(variances, batch_size=5000)
    return Dataset(pathways=pathways, episodes=episodes, units=units, clinicians=clinicians)
