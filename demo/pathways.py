"""Demo pathways: HIP-FRACTURE and TKR, with their resources and rates.

- ``TKR``: elective total knee replacement, exactly DOMAIN.md section 4's worked example
  (its resources, rates, steps and quantities), so that its expected cost is 4,167.13
  with the FY 2025/26 rates. FY 2024/25 rates a little lower are loaded too: cost a
  date before April 2025 on the pathway page and the older rates apply.
- ``HIP-FRACTURE``: fragility hip fracture after NICE CG124 and QS16, the NHS Best
  Practice Tariff and the National Hip Fracture Database. Version 1 (surgery on the day
  of or the day after admission) was replaced by version 2 (surgery within 36 hours,
  delirium screen added), so the version history and diff have something to show.

SEPSIS-ED is loaded by ``demo/sepsis.py``. Rates come from three kinds of source, each
named in the rate: the DOMAIN.md example, NHS England's National Cost Collection
2023/24 (codes as the NCC importer makes them, e.g. ``NCC-VB07Z-EC``), and illustrative
trust figures where no national figure prices the item (an implant, a consultant minute).

The spec constants (``TKR_RESOURCES``, ``TKR_STAGES``, ``TKR_STEPS``) are shared with the
test fixture ``tests/pathways/tkr.py``. Idempotent: a pathway that exists is left alone,
unchanged rates are not rewritten.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from costing.imports import import_ncc
from costing.rates import capacity_cost_rate, cost_rate_set
from pathways import services
from pathways.models import Pathway, PathwayVersion, Resource, Step

from .episodes import DAYS, VERSION_SWITCH_DAYS

Kind = Resource.Kind
Unit = Resource.Unit

DOMAIN_SOURCE = "Riverside costing model FY 2025/26: the rates of the worked knee replacement costing example"
TRUST_2025 = "Riverside costing model FY 2025/26 (illustrative trust figure)"
TRUST_2024 = "Riverside costing model FY 2024/25 (illustrative trust figure)"
NCC = "NHS National Cost Collection 2023/24 national schedule"
NCC_INCLUDES = "Full absorbed cost (staff, consumables and overheads), national average"

# --- TKR: DOMAIN.md section 4, exactly -----------------------------------------------------

# code, name, kind, unit, salaried, FY 2025/26 rate
TKR_RESOURCES = [
    ("CONSULTANT", "Consultant surgeon", Kind.STAFF, Unit.MINUTE, True, "1.875"),
    ("THEATRE-NURSE", "Theatre nurse", Kind.STAFF, Unit.MINUTE, True, "0.80"),
    ("WARD-NURSE", "Ward nurse", Kind.STAFF, Unit.MINUTE, True, "0.70"),
    ("PHYSIOTHERAPIST", "Physiotherapist", Kind.STAFF, Unit.MINUTE, True, "0.625"),
    ("THEATRE", "Theatre (room and kit)", Kind.ROOM, Unit.MINUTE, False, "4.50"),
    ("BED-DAY", "Ward bed-day", Kind.BED_DAY, Unit.DAY, False, "180"),
    ("IMPLANT", "Knee implant (cemented total knee)", Kind.CONSUMABLE, Unit.ITEM, False, "2000"),
    ("CONSUMABLES", "Theatre consumables pack", Kind.CONSUMABLE, Unit.ITEM, False, "300"),
]

TKR_STAGES = [("PRE-OP", "Pre-operative"), ("THEATRE", "Theatre"), ("WARD", "Ward and rehabilitation")]

# stage, code, name, type, per_day, expected_count, planned [(resource, quantity, headcount)]
TKR_STEPS = [
    ("PRE-OP", "PREOP", "Pre-operative assessment", Step.Type.ASSESSMENT, False, "1",
     [("WARD-NURSE", "30", 1), ("CONSULTANT", "15", 1)]),
    ("THEATRE", "SURGERY", "Total knee replacement", Step.Type.PROCEDURE, False, "1",
     [("THEATRE", "90", 1), ("CONSULTANT", "90", 1), ("THEATRE-NURSE", "90", 2),
      ("IMPLANT", "1", 1), ("CONSUMABLES", "1", 1)]),
    ("WARD", "WARD-STAY", "Ward stay", Step.Type.STAY, True, "3",
     [("BED-DAY", "1", 1), ("WARD-NURSE", "240", 1)]),
    ("WARD", "PHYSIO", "Physiotherapy session", Step.Type.THERAPY, False, "2",
     [("PHYSIOTHERAPIST", "45", 1)]),
]  # fmt: skip

# Demo only (the test fixture has no timing): windows, evidence and order for TKR.
# code -> (anchor, min, max, must follow, criticality, evidence)
TKR_TIMING = {
    "PREOP": (None, 0, 60, [], 3, "NICE NG157: pre-operative assessment before joint replacement"),
    "SURGERY": (None, 60, 480, ["PREOP"], 5, "Elective list on the day of admission"),
    "WARD-STAY": (None, None, None, ["SURGERY"], 1, "Expected length of stay 3 days (enhanced recovery)"),
    "PHYSIO": ("SURGERY", 0, 1440, ["SURGERY"], 4, "NICE NG157: mobilise within 24 hours of surgery"),
}

# FY 2024/25: pay awards and prices a little lower than 2025/26.
TKR_RATES_2024 = {
    "CONSULTANT": "1.80",
    "THEATRE-NURSE": "0.77",
    "WARD-NURSE": "0.67",
    "PHYSIOTHERAPIST": "0.60",
    "THEATRE": "4.35",
    "BED-DAY": "172",
    "IMPLANT": "1950",
    "CONSUMABLES": "290",
}

# The consultant's rate shown with its working: CCR = capacity cost / practical minutes.
# 37.5 h x 60 x 46 weeks = 103,500 theoretical minutes; 85% practical = 87,975.
CONSULTANT_CCR = {"capacity_cost": Decimal("164953.13"), "theoretical_minutes": Decimal("103500")}

TKR_DESCRIPTION = """Elective primary total knee replacement, enhanced recovery.

Its resources, rates, steps and quantities are exactly those of CommonPath's worked costing example, so that the expected episode cost E is 4,167.13 with the FY 2025/26 rates (4,167.125 before rounding).

Sources: NICE NG157 Joint replacement (primary): hip, knee and shoulder (2020), https://www.nice.org.uk/guidance/ng157 ; GIRFT Orthopaedics national report. Rates: see each resource."""

# --- HIP-FRACTURE ------------------------------------------------------------------------------

HIP_RESOURCES = [
    # code, name, kind, unit, salaried, FY 2025/26 rate, FY 2024/25 rate, source
    ("ANAESTHETIST", "Consultant anaesthetist", Kind.STAFF, Unit.MINUTE, True, "1.85", "1.78", None),
    ("ORTHOGERIATRICIAN", "Consultant orthogeriatrician", Kind.STAFF, Unit.MINUTE, True, "1.70", "1.64", None),
    ("HIP-IMPLANT", "Hip hemiarthroplasty implant (cemented, modular)", Kind.CONSUMABLE, Unit.ITEM, False, "720", "700",
     "Illustrative supplier price: no NCC currency prices an implant on its own"),
]  # fmt: skip

# NCC 2023/24 figures used by HIP-FRACTURE, in the importer's format so that importing
# the full schedule later reports them unchanged.
NCC_ROWS = (
    "Service Code,Dept or Currency Code,Dept or Currency Desc,Activity,Unit cost,Cost\n"
    'Emergency Care,VB07Z ," Emergency Medicine, Category 2 Investigation with Category 2 Treatment",'
    "2270366,359.288,815715223\n"
)
NCC_ED_ATTENDANCE = "NCC-VB07Z-EC"

HIP_STAGES = [("ED", "Emergency department"), ("SURGERY", "Admission and surgery"), ("WARD", "Ward and rehabilitation")]

CG124 = "NICE CG124"
QS16 = "NICE QS16"
BPT = "Best Practice Tariff (fragility hip fracture)"

# stage, code, name, type, mandatory, criticality, anchor, min, max, must follow, per_day, count, evidence, guidance, planned
HIP_STEPS_V1 = [
    ("ED", "ED-ASSESS", "ED assessment and triage", Step.Type.ASSESSMENT, True, 3, None, 0, 240, [], False, "1",
     "NHS England four-hour emergency access standard",
     "The attendance cost covers the department's X-ray and blood tests too (NCC ED currencies include investigations).",
     [(NCC_ED_ATTENDANCE, "1", 1)]),
    ("ED", "ANALGESIA", "Pain assessed and analgesia given", Step.Type.MEDICATION, True, 4, None, 0, 30, [], False, "1",
     f"{CG124}: assess pain immediately on presentation; offer analgesia, consider a fascia iliaca block",
     "Reassess within 30 minutes of the first analgesia.",
     [("WARD-NURSE", "10", 1)]),
    ("ED", "XRAY", "Hip X-ray (AP pelvis and lateral hip)", Step.Type.INVESTIGATION, True, 3, None, 0, 120, [], False, "1",
     f"{CG124}: MRI if X-ray is negative and a fracture is still suspected",
     "Costed within the ED attendance.", []),
    ("ED", "BLOODS", "Blood tests (FBC, U&E, group and save)", Step.Type.INVESTIGATION, True, 2, None, 0, 120, [], False, "1",
     "Pre-operative work-up", "Costed within the ED attendance.", []),
    ("SURGERY", "ORTHOGERI", "Orthogeriatric assessment", Step.Type.ASSESSMENT, True, 4, None, 0, 4320, [], False, "1",
     f"{QS16}; {BPT}: assessed by a geriatrician within 72 hours of admission",
     "Comprehensive geriatric assessment: comorbidities, medicines, cognition, falls risk.",
     [("ORTHOGERIATRICIAN", "45", 1)]),
    ("SURGERY", "SURGERY", "Hip fracture surgery (hemiarthroplasty or fixation)", Step.Type.PROCEDURE, True, 5, None, 0, 2880,
     ["XRAY", "BLOODS"], False, "1",
     f"{CG124} and {QS16}: surgery on the day of, or the day after, admission",
     "Correct identified comorbidities promptly so that surgery is not delayed.",
     [("THEATRE", "75", 1), ("CONSULTANT", "75", 1), ("ANAESTHETIST", "90", 1), ("THEATRE-NURSE", "90", 2),
      ("HIP-IMPLANT", "1", 1), ("CONSUMABLES", "1", 1)]),
    ("WARD", "MOBILISE", "Physiotherapy assessment and mobilisation", Step.Type.THERAPY, True, 4, "SURGERY", 0, 1440,
     ["SURGERY"], False, "1",
     f"{CG124}: physiotherapy assessment and mobilisation on the day after surgery; NHFD: out of bed by the day after surgery",
     "", [("PHYSIOTHERAPIST", "45", 1)]),
    ("WARD", "BONE-HEALTH", "Falls and bone health assessment", Step.Type.ASSESSMENT, True, 3, None, None, None,
     ["ORTHOGERI"], False, "1",
     f"{QS16}: falls and bone health assessment; NHFD: bone protection medication",
     "Before discharge.", [("ORTHOGERIATRICIAN", "20", 1)]),
    ("WARD", "WARD-STAY", "Acute ward stay", Step.Type.STAY, True, 1, None, None, None, [], True, "14",
     "NHFD annual report: mean acute length of stay about two weeks",
     "Per day: bed-day and three hours of ward nursing.", [("BED-DAY", "1", 1), ("WARD-NURSE", "180", 1)]),
    ("WARD", "DISCHARGE", "Discharge with a rehabilitation plan", Step.Type.DISCHARGE, True, 2, None, None, None,
     ["MOBILISE", "BONE-HEALTH"], False, "1",
     "NHFD: return to original residence within 120 days", "", [("WARD-NURSE", "30", 1)]),
]  # fmt: skip

HIP_V2_NOTE = (
    "Surgery within 36 hours of arrival (Best Practice Tariff) instead of 'by the day after admission'; "
    "delirium screen after surgery added (NHFD key performance indicator)."
)

HIP_DESCRIPTION = """Fragility hip fracture in adults: from the emergency department to discharge.

Sources:
- NICE CG124 Hip fracture: management (2011, updated 2023), https://www.nice.org.uk/guidance/cg124 : pain assessment on presentation, imaging, surgery on the day of or the day after admission, orthogeriatric care, mobilisation on the day after surgery.
- NICE QS16 Hip fracture in adults (quality standard), https://www.nice.org.uk/guidance/qs16 .
- NHS England Best Practice Tariff for fragility hip fracture: surgery within 36 hours of arrival; assessment by a geriatrician within 72 hours of admission.
- National Hip Fracture Database (Royal College of Physicians) key performance indicators: prompt orthogeriatric review, prompt surgery, prompt mobilisation, not delirious after surgery, bone health medication, return to original residence within 120 days.
- NICE CG103 Delirium: prevention, diagnosis and management (4AT screen).

Costs: staff and theatre at trust capacity cost rates; the ED attendance at the NHS National Cost Collection 2023/24 unit cost (VB07Z); the implant at an illustrative supplier price. Contains public sector information licensed under the Open Government Licence v3.0."""


# --- loading -------------------------------------------------------------------------------------


def first_effective_date() -> date:
    """The demo's first versions took effect before its oldest episode (18 months of care), on the 1st of a month."""
    return (timezone.localdate() - timedelta(days=DAYS + 14)).replace(day=1)


def first_agreed_at() -> datetime:
    """The first versions were agreed (published) two weeks before they took effect, not when the demo loads:
    a version that carries a year of episodes was not published today."""
    agreed = first_effective_date() - timedelta(days=14)
    return timezone.make_aware(datetime.combine(agreed, time(10, 0)))


def switch_date() -> date:
    """HIP-FRACTURE v2 took effect when the demo's episodes move on to it (``demo.episodes``)."""
    return timezone.localdate(switch_at())


def switch_at() -> datetime:
    """When HIP-FRACTURE v2 was published and v1 retired: episodes started before follow v1, as in
    ``demo.episodes`` (which switches at the same distance from its own "now")."""
    return timezone.now() - timedelta(days=VERSION_SWITCH_DAYS)


def load(*, units, users, stdout) -> None:
    lead = users.get("lead")
    finance = users.get("finance")
    resources = load_resources(actor=finance)
    tkr = load_tkr(owner_unit=units["ORTHO"], actor=lead, resources=resources)
    hip = load_hip_fracture(owner_unit=units["ORTHO"], actor=lead, resources=resources)
    for version in (tkr, hip):
        stdout.write(f"Pathway {version.pathway.code} v{version.number} ready.")


@transaction.atomic
def load_resources(*, actor=None) -> dict[str, Resource]:
    """Resources and rates of TKR and HIP-FRACTURE (unchanged rates are not rewritten)."""
    resources: dict[str, Resource] = {}
    for code, name, kind, unit, salaried, rate in TKR_RESOURCES:
        resources[code] = _resource(code, name, kind, unit, salaried)
        ccr = None
        if code == "CONSULTANT":
            ccr = capacity_cost_rate(**CONSULTANT_CCR, practical_factor=Decimal("0.85"))
        cost_rate_set(
            resource=resources[code],
            financial_year=2025,
            rate=Decimal(rate),
            ccr=ccr,
            price_year=2025,
            source=DOMAIN_SOURCE,
            includes="department overheads" if kind in (Kind.ROOM, Kind.BED_DAY) else "",
            actor=actor,
        )
        cost_rate_set(
            resource=resources[code],
            financial_year=2024,
            rate=Decimal(TKR_RATES_2024[code]),
            price_year=2024,
            source=TRUST_2024,
            includes="department overheads" if kind in (Kind.ROOM, Kind.BED_DAY) else "",
            actor=actor,
        )
    for code, name, kind, unit, salaried, rate_2025, rate_2024, source in HIP_RESOURCES:
        resources[code] = _resource(code, name, kind, unit, salaried)
        for year, rate, default_source in ((2025, rate_2025, TRUST_2025), (2024, rate_2024, TRUST_2024)):
            cost_rate_set(
                resource=resources[code],
                financial_year=year,
                rate=Decimal(rate),
                price_year=year,
                source=source or default_source,
                actor=actor,
            )
    if not Resource.objects.filter(code=NCC_ED_ATTENDANCE, rates__financial_year=2023).exists():
        import_ncc(data=NCC_ROWS, actor=actor, financial_year=2023, filename="demo: NCC 2023/24 VB07Z")
    resources[NCC_ED_ATTENDANCE] = Resource.objects.get(code=NCC_ED_ATTENDANCE)
    return resources


def _resource(code, name, kind, unit, salaried) -> Resource:
    resource, _ = Resource.objects.get_or_create(
        code=code, defaults={"name": name, "kind": kind, "unit": unit, "salaried": salaried}
    )
    return resource


@transaction.atomic
def load_tkr(*, owner_unit, actor, resources: dict[str, Resource]) -> PathwayVersion:
    existing = _current("TKR")
    if existing is not None:
        return existing
    pathway = services.pathway_create(
        code="TKR",
        name="Elective total knee replacement",
        specialty="Orthopaedics",
        owner_unit=owner_unit,
        description=TKR_DESCRIPTION,
        actor=actor,
    )
    version = pathway.versions.get()
    stages = {code: services.stage_add(version=version, name=name, actor=actor) for code, name in TKR_STAGES}
    steps: dict[str, Step] = {}
    for stage, code, name, step_type, per_day, count, planned in TKR_STEPS:
        anchor, low, high, follows, criticality, evidence = TKR_TIMING[code]
        steps[code] = services.step_add(
            stage=stages[stage],
            actor=actor,
            must_follow=[steps[f] for f in follows],
            code=code,
            name=name,
            step_type=step_type,
            per_day=per_day,
            expected_count=Decimal(count),
            anchor=steps.get(anchor),
            window_min_minutes=low,
            window_max_minutes=high,
            criticality=criticality,
            evidence=evidence,
        )
        for resource, quantity, headcount in planned:
            services.planned_resource_add(
                step=steps[code],
                resource=resources[resource],
                quantity=Decimal(quantity),
                headcount=headcount,
                actor=actor,
            )
    return services.pathway_version_publish(
        version=version,
        actor=actor,
        note="Agreed by the elective orthopaedic team and finance (the worked costing example).",
        effective_from=first_effective_date(),
        agreed_at=first_agreed_at(),
    )


@transaction.atomic
def load_hip_fracture(*, owner_unit, actor, resources: dict[str, Resource]) -> PathwayVersion:
    existing = _current("HIP-FRACTURE")
    if existing is not None:
        return existing
    pathway = services.pathway_create(
        code="HIP-FRACTURE",
        name="Fragility hip fracture",
        specialty="Orthogeriatrics",
        owner_unit=owner_unit,
        description=HIP_DESCRIPTION,
        actor=actor,
    )
    v1 = pathway.versions.get()
    stages = {code: services.stage_add(version=v1, name=name, actor=actor) for code, name in HIP_STAGES}
    steps: dict[str, Step] = {}
    for row in HIP_STEPS_V1:
        (stage, code, name, step_type, mandatory, criticality, anchor, low, high, follows, per_day, count) = row[:12]
        evidence, guidance, planned = row[12:]
        steps[code] = services.step_add(
            stage=stages[stage],
            actor=actor,
            must_follow=[steps[f] for f in follows],
            code=code,
            name=name,
            step_type=step_type,
            mandatory=mandatory,
            criticality=criticality,
            anchor=steps.get(anchor),
            window_min_minutes=low,
            window_max_minutes=high,
            per_day=per_day,
            expected_count=Decimal(count),
            evidence=evidence,
            guidance=guidance,
        )
        for resource, quantity, headcount in planned:
            services.planned_resource_add(
                step=steps[code],
                resource=resources[resource],
                quantity=Decimal(quantity),
                headcount=headcount,
                actor=actor,
            )
    services.pathway_version_publish(
        version=v1,
        actor=actor,
        note="First agreed version: surgery on the day of, or the day after, admission.",
        effective_from=first_effective_date(),
        agreed_at=first_agreed_at(),
    )

    v2 = services.pathway_version_draft(pathway=pathway, actor=actor, note="Align with the Best Practice Tariff")
    surgery = v2.steps.get(code="SURGERY")
    services.step_update(
        step=surgery,
        actor=actor,
        window_max_minutes=2160,
        evidence=f"{CG124} and {QS16}: surgery on the day of, or the day after, admission; {BPT}: within 36 hours",
    )
    delirium = services.step_add(
        stage=v2.stages.get(name="Ward and rehabilitation"),
        actor=actor,
        code="DELIRIUM",
        name="Delirium screen (4AT) after surgery",
        step_type=Step.Type.ASSESSMENT,
        criticality=3,
        anchor=surgery,
        window_min_minutes=0,
        window_max_minutes=1440,
        must_follow=[surgery],
        evidence="NICE CG103 delirium; NHFD key performance indicator: not delirious after surgery",
    )
    services.step_move(step=delirium, offset=-4, actor=actor)
    services.planned_resource_add(step=delirium, resource=resources["WARD-NURSE"], quantity=Decimal("10"), actor=actor)
    return services.pathway_version_publish(
        version=v2, actor=actor, note=HIP_V2_NOTE, effective_from=switch_date(), agreed_at=switch_at()
    )


def _current(code: str) -> PathwayVersion | None:
    """The published version of a demo pathway that already exists (else its newest version)."""
    pathway = Pathway.objects.filter(code=code).first()
    if pathway is None:
        return None
    return (
        pathway.versions.filter(status=PathwayVersion.Status.PUBLISHED).first()
        or pathway.versions.order_by("-number").first()
    )
