"""The elective knee replacement of DOMAIN.md section 4, built with the ORM for API tests.

Rates (this financial year): consultant 1.875/min, theatre nurse 0.80/min, ward
nurse 0.70/min, physiotherapist 0.625/min, theatre 4.50/min, bed-day 180/day,
knee implant 2,000/item, theatre consumables 300/item. Expected E = 4,167.125.

| code    | anchor  | window (min) | planned                                              | f |
|---------|---------|--------------|------------------------------------------------------|---|
| PREOP   | start   | 0 .. 240     | ward nurse 30, consultant 15                         | 1 |
| SURGERY | start   | 60 .. 1440   | theatre 90, consultant 90, 2 x theatre nurse 90,     | 1 |
|         |         |              | implant 1, consumables 1 (must follow PREOP)         |   |
| STAY    | -       | per day      | bed-day 1, ward nurse 240                            | 3 |
| PHYSIO  | SURGERY | 0 .. 1440    | physiotherapist 45                                   | 2 |
"""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from costing.models import CostRate, financial_year_of
from pathways.models import Pathway, PathwayVersion, PlannedResource, Resource, Stage, Step
from variances import services
from variances.models import ReasonCode
from variances.reasons import seed_base_reasons

RESOURCES = [
    # code, name, kind, unit, salaried, rate
    ("CONSULTANT", "Consultant surgeon", "staff", "minute", True, "1.875"),
    ("THEATRE-NURSE", "Theatre nurse", "staff", "minute", True, "0.80"),
    ("WARD-NURSE", "Ward nurse", "staff", "minute", True, "0.70"),
    ("PHYSIO", "Physiotherapist", "staff", "minute", True, "0.625"),
    ("THEATRE", "Theatre (room and kit)", "room", "minute", False, "4.50"),
    ("BED-DAY", "Ward bed-day", "bed_day", "day", False, "180"),
    ("IMPLANT-KNEE", "Knee implant", "consumable", "item", False, "2000"),
    ("THEATRE-CONSUMABLES", "Theatre consumables", "consumable", "item", False, "300"),
]

STEPS = [
    # code, name, type, anchor, min, max, mandatory, criticality, per_day, f, must follow, planned
    ("PREOP", "Pre-operative assessment", "assessment", None, 0, 240, True, 3, False, "1", [],
     [("WARD-NURSE", "30", 1), ("CONSULTANT", "15", 1)]),
    ("SURGERY", "Total knee replacement", "procedure", None, 60, 1440, True, 5, False, "1", ["PREOP"],
     [("THEATRE", "90", 1), ("CONSULTANT", "90", 1), ("THEATRE-NURSE", "90", 2), ("IMPLANT-KNEE", "1", 1),
      ("THEATRE-CONSUMABLES", "1", 1)]),
    ("STAY", "Ward stay", "stay", None, None, None, True, 1, True, "3", [],
     [("BED-DAY", "1", 1), ("WARD-NURSE", "240", 1)]),
    ("PHYSIO", "Physiotherapy session", "therapy", "SURGERY", 0, 1440, True, 2, False, "2", [],
     [("PHYSIO", "45", 1)]),
]  # fmt: skip

EXPECTED_COST = Decimal("4167.125")


def resources() -> dict[str, Resource]:
    out = {}
    fy = financial_year_of(timezone.localdate())
    for code, name, kind, unit, salaried, rate in RESOURCES:
        resource, _ = Resource.objects.get_or_create(
            code=code, defaults={"name": name, "kind": kind, "unit": unit, "salaried": salaried}
        )
        CostRate.objects.get_or_create(
            resource=resource,
            financial_year=fy,
            defaults={"rate": Decimal(rate), "price_year": fy, "source": "DOMAIN.md worked example"},
        )
        out[code] = resource
    return out


def build_tkr(org_unit, *, code="TKR", number=1, status=PathwayVersion.Status.PUBLISHED, pathway=None):
    """A TKR pathway version owned by ``org_unit`` (published unless told otherwise)."""
    res = resources()
    pathway = pathway or Pathway.objects.create(
        code=code,
        name="Elective total knee replacement",
        specialty="Orthopaedics",
        owner_unit=org_unit,
        description="Elective primary knee replacement, day-of-surgery admission.",
    )
    version = PathwayVersion.objects.create(pathway=pathway, number=number, change_note="First agreed version")
    admission = Stage.objects.create(version=version, order=1, name="Admission and surgery")
    ward = Stage.objects.create(version=version, order=2, name="Ward and rehabilitation")
    by_code = {}
    for order, row in enumerate(STEPS):
        scode, name, stype, anchor, wmin, wmax, mandatory, crit, per_day, f, follows, planned = row
        step = Step.objects.create(
            version=version,
            stage=admission if scode in ("PREOP", "SURGERY") else ward,
            order=order,
            code=scode,
            name=name,
            step_type=stype,
            anchor=by_code.get(anchor),
            window_min_minutes=wmin,
            window_max_minutes=wmax,
            mandatory=mandatory,
            criticality=crit,
            per_day=per_day,
            expected_count=Decimal(f),
            evidence="NICE NG157" if scode == "SURGERY" else "",
        )
        step.must_follow.set([by_code[c] for c in follows])
        for rcode, quantity, headcount in planned:
            PlannedResource.objects.create(
                step=step, resource=res[rcode], quantity=Decimal(quantity), headcount=headcount
            )
        by_code[scode] = step
    if status != PathwayVersion.Status.DRAFT:
        version.status = status
        version.published_at = timezone.now() - timedelta(days=30)
        version.save()
    return version


def reason(code="service-not-available") -> ReasonCode:
    seed_base_reasons(ReasonCode)  # a transactional test's flush empties the seeded table
    return ReasonCode.objects.get(code=code, pathway__isnull=True)


def start_episode(version, unit, clinician, *, ref="PT-0001A", hours_ago=30):
    return services.episode_start(
        pathway_version=version,
        patient_ref=ref,
        org_unit=unit,
        responsible_clinician=clinician,
        started_at=timezone.now() - timedelta(hours=hours_ago),
        actor=clinician,
    )


def theatre_delay(episode, **fields) -> dict:
    """The API body of a documented, system-caused surgery delay on ``episode`` (override any field)."""
    return {
        "episode": episode.pk,
        "step": "SURGERY",
        "type": "delay",
        "cause": "system",
        "reason": "service-not-available",
        "valence": "negative",
        "rationale": "No theatre slot until the next morning",
        "occurred_at": (episode.started_at + timedelta(hours=20)).isoformat(),
        **fields,
    }


def record_variance(episode, actor, *, step="SURGERY", type="delay", rationale="Theatre list overran"):
    return services.variance_record(
        episode=episode,
        step=episode.version.steps.get(code=step) if step else None,
        variance_type=type,
        cause="system",
        reason=reason(),
        valence="negative",
        rationale=rationale,
        occurred_at=episode.started_at + timedelta(hours=2),
        actor=actor,
    )
