"""SEPSIS-ED: emergency-department sepsis, costed with NHS National Cost Collection figures.

The pathway follows the Surviving Sepsis Campaign hour-1 bundle and UK
screening practice (issue #7): windows are minutes after the anchor, measured
from sepsis screening ("time zero") for the bundle. If the real 4TU *Sepsis
Cases* log is at hand (``SHARED_DATA_DIR`` or ``../shared/data``), the demo
imports it onto the pathway in the Emergency Department, so that the sepsis
figures on first login are those of a real hospital.

Unit costs: NHS England, 2023/24 National Cost Collection national schedule
(``ncc_2023_24.csv``). Contains public sector information licensed under the
Open Government Licence v3.0. IV antibiotics and fluids have no NCC currency
(drugs are not costed per dose there) and stay uncosted rather than invented.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction

from costing.rates import cost_rate_set
from pathways.models import Pathway, PathwayVersion, Resource, Step
from pathways.services import (
    pathway_create,
    pathway_version_draft,
    pathway_version_publish,
    planned_resource_add,
    stage_add,
    step_add,
)
from variances.importers import import_events, load_mapping
from variances.models import Episode

CODE = "SEPSIS-ED"
MAPPING_PATH = Path(settings.BASE_DIR) / "data" / "mappings" / "sepsis-4tu.json"
LOG_FILE_NAME = "Sepsis Cases - Event Log.xes.gz"
CITATION = (
    "Mannhardt, F. (2016). Sepsis Cases - Event Log. 4TU.ResearchData. "
    "DOI 10.4121/uuid:915d2bfb-7e84-49ad-a286-dc35f063a460"
)
NCC = "NHS England 2023/24 National Cost Collection, national schedule"
NCC_YEAR = 2023
# The 4TU log's dates (2013-2015) were randomised by its publisher. To cost its
# episodes at all, the same 2023/24 figures are also entered as the FY 2013/14
# rate (price year 2023 says which prices they are).
LOG_BACKFILL_YEAR = 2013

Kind = Resource.Kind
Unit = Resource.Unit

# code, name, kind, unit, NCC currency, NCC unit cost (GBP), why this currency, what it includes
RESOURCES = [
    (
        "NCC-VB05Z-EC",
        "ED attendance: category 2 investigation with category 3 treatment",
        Kind.OVERHEAD,
        Unit.ITEM,
        "VB05Z",
        "471.8492",
        "Emergency Medicine, Category 2 Investigation with Category 3 Treatment: blood tests with "
        "intravenous treatment (confirm against the trust's own ECDS grouping)",
        "The whole ED attendance: staff, triage, cubicle and the department's overheads. It overlaps with "
        "the pathology tests costed on their own steps (about 6 GBP), kept separate so that a missing or "
        "repeated test shows its cost.",
    ),
    (
        "NCC-PATH04-PATH",
        "Pathology test: clinical biochemistry",
        Kind.CONSUMABLE,
        Unit.ITEM,
        "PATH04",
        "1.5251",
        "Directly Accessed Pathology, Clinical biochemistry, per test (CRP, lactate)",
        "Laboratory cost per test; not the phlebotomy (PATH08).",
    ),
    (
        "NCC-PATH05-PATH",
        "Pathology test: haematology",
        Kind.CONSUMABLE,
        Unit.ITEM,
        "PATH05",
        "3.0956",
        "Directly Accessed Pathology, Haematology, per test (leucocyte count)",
        "Laboratory cost per test; not the phlebotomy (PATH08).",
    ),
    (
        "NCC-XC06Z-CC",
        "Adult critical care bed-day, 1 organ supported",
        Kind.BED_DAY,
        Unit.DAY,
        "XC06Z",
        "1737.829",
        "Adult Critical Care, 1 Organ Supported, per bed-day: septic shock needing vasopressors is "
        "cardiovascular support of one organ",
        "Everything on the critical care unit for one day: staff, bed, drugs and overheads.",
    ),
]

STAGES = [
    ("ARRIVAL", "Arrival and screening"),
    ("BUNDLE", "Hour-1 bundle"),
    ("ONWARD", "Admission and discharge"),
]

SSC = "Surviving Sepsis Campaign hour-1 bundle (Levy, Evans & Rhodes, Crit Care Med 2018;46:997-1000)"
NG51 = "NICE NG51 Sepsis: recognition, diagnosis and early management"

# stage, code, name, type, anchor, min, max, mandatory, criticality, evidence, planned [(resource, qty)], expected
STEPS = [
    ("ARRIVAL", "ER-REGISTRATION", "Registration", Step.Type.OTHER, None, None, None, True, 1,
     "Start of the ED attendance", [("NCC-VB05Z-EC", "1")], "1"),
    ("ARRIVAL", "ER-TRIAGE", "Triage", Step.Type.ASSESSMENT, "ER-REGISTRATION", 0, 15, True, 3,
     "RCEM: initial assessment within 15 minutes of arrival", [], "1"),
    ("ARRIVAL", "SEPSIS-TRIAGE", "Sepsis screening", Step.Type.ASSESSMENT, "ER-REGISTRATION", 0, 15, True, 4,
     f"{NG51}: structured assessment of anyone who might have sepsis; time zero of the bundle", [], "1"),
    ("BUNDLE", "LACTATE", "Lactate measured", Step.Type.INVESTIGATION, "SEPSIS-TRIAGE", 0, 60, True, 3,
     SSC, [("NCC-PATH04-PATH", "1")], "1"),
    ("BUNDLE", "BLOODS", "CRP and leucocytes", Step.Type.INVESTIGATION, "SEPSIS-TRIAGE", 0, 60, True, 3,
     f"{NG51}: blood tests including full blood count and C-reactive protein",
     [("NCC-PATH04-PATH", "1"), ("NCC-PATH05-PATH", "1")], "1"),
    ("BUNDLE", "IV-ANTIBIOTICS", "IV antibiotics", Step.Type.MEDICATION, "SEPSIS-TRIAGE", 0, 60, True, 5,
     f"{SSC}; {NG51}", [], "1"),
    ("BUNDLE", "IV-FLUIDS", "IV fluids", Step.Type.MEDICATION, "SEPSIS-TRIAGE", 0, 60, True, 4,
     SSC, [], "1"),
    ("ONWARD", "ADMISSION", "Admission to ward or intensive care", Step.Type.ADMISSION, "SEPSIS-TRIAGE", 0, 240,
     False, 2, "Decision to admit within 4 hours (ED four-hour standard)", [("NCC-XC06Z-CC", "0.1")], "1"),
    ("ONWARD", "DISCHARGE", "Release from hospital", Step.Type.DISCHARGE, None, 0, None, True, 1,
     "End of the hospital stay", [], "1"),
]  # fmt: skip

GUIDANCE = {
    "ADMISSION": (
        "Optional: not every patient is admitted. Planned as 0.1 critical-care bed-day per admission: about one "
        "admission in ten goes to intensive care (117 of 1,299 admission events in the 4TU Sepsis log). A ward "
        "admission records 0 critical-care days, an intensive-care admission 1, so the difference shows as a "
        "usage variance."
    ),
    "IV-ANTIBIOTICS": "No NCC currency costs a dose of antibiotics; the step is uncosted rather than guessed.",
    "IV-FLUIDS": "No NCC currency costs intravenous fluids; the step is uncosted rather than guessed.",
}

DESCRIPTION = (
    "Emergency-department sepsis after the Surviving Sepsis Campaign hour-1 bundle and UK screening practice. "
    "Screening within 15 minutes of registration; lactate, CRP and leucocytes, IV antibiotics and IV fluids "
    "within 1 hour of screening; admission (optional) within 4 hours. Sources: Levy MM, Evans LE, Rhodes A. "
    "The Surviving Sepsis Campaign Bundle: 2018 update. Crit Care Med 2018;46:997-1000; NICE NG51. "
    "Unit costs: NHS England 2023/24 National Cost Collection (Open Government Licence v3.0)."
)


def shared_data_dir() -> Path:
    """Where the shared data files live: ``SHARED_DATA_DIR``, else ``../shared/data`` beside the repository."""
    configured = os.environ.get("SHARED_DATA_DIR", "")
    if configured:
        return Path(configured)
    return Path(settings.BASE_DIR).parent / "shared" / "data"


def sepsis_log_path() -> Path:
    return shared_data_dir() / LOG_FILE_NAME


def load_resources(*, actor=None, years=(NCC_YEAR, LOG_BACKFILL_YEAR)) -> dict[str, Resource]:
    """The four NCC resources and their rates (idempotent: unchanged rates are not rewritten)."""
    resources = {}
    for code, name, kind, unit, currency, cost, why, includes in RESOURCES:
        resource, _ = Resource.objects.get_or_create(
            code=code, defaults={"name": name, "kind": kind, "unit": unit, "description": f"NCC 2023/24 {currency}"}
        )
        resources[code] = resource
        for year in years:
            note = "" if year == NCC_YEAR else " Back-dated to FY 2013/14 for the 4TU log's dates."
            cost_rate_set(
                resource=resource,
                financial_year=year,
                rate=Decimal(cost),
                price_year=NCC_YEAR,
                source=f"{NCC}, {currency}: {why}.{note}"[:300],
                includes=includes[:300],
                actor=actor,
            )
    return resources


@transaction.atomic
def build_pathway(*, owner_unit, actor=None, resources: dict[str, Resource] | None = None) -> PathwayVersion:
    """Create and publish SEPSIS-ED exactly as issue #7's table, through the pathway services.

    Idempotent: if the pathway already has a published version, that is returned unchanged.
    """
    existing = PathwayVersion.objects.published().filter(pathway__code=CODE).first()
    if existing is not None:
        return existing
    resources = resources or load_resources(actor=actor)
    pathway = Pathway.objects.filter(code=CODE).first()
    if pathway is None:
        pathway = pathway_create(
            code=CODE,
            name="Sepsis in the emergency department",
            specialty="Emergency medicine",
            owner_unit=owner_unit,
            description=DESCRIPTION,
            actor=actor,
            note="SEPSIS-ED as specified for the 4TU Sepsis log import",
        )
    version = pathway.versions.filter(status=PathwayVersion.Status.DRAFT).order_by("-number").first()
    if version is None:
        version = pathway_version_draft(pathway=pathway, actor=actor, note="Rebuilt by the demo loader")
    if version.steps.exists():
        raise ValueError(f"{CODE} has a draft with steps already; publish or discard it before loading the demo")
    stages = {code: stage_add(version=version, name=name, actor=actor) for code, name in STAGES}
    steps: dict[str, Step] = {}
    for row in STEPS:
        stage, code, name, step_type, anchor, wmin, wmax, mandatory, criticality, evidence, planned, expected = row
        steps[code] = step = step_add(
            stage=stages[stage],
            actor=actor,
            code=code,
            name=name,
            step_type=step_type,
            mandatory=mandatory,
            criticality=criticality,
            evidence=evidence[:300],
            guidance=GUIDANCE.get(code, ""),
            anchor=steps[anchor] if anchor else None,
            window_min_minutes=wmin,
            window_max_minutes=wmax,
            expected_count=Decimal(expected),
        )
        for resource_code, quantity in planned:
            planned_resource_add(step=step, resource=resources[resource_code], quantity=Decimal(quantity), actor=actor)
    return pathway_version_publish(
        version=version,
        actor=actor,
        note="First version: hour-1 bundle after the Surviving Sepsis Campaign and UK screening practice.",
        effective_from=date(2013, 4, 1),
    )


def load(*, units, users, stdout) -> None:
    """Demo content: SEPSIS-ED owned by the Emergency Department, and the real log if present."""
    actor = users.get("ed-lead")
    resources = load_resources(actor=actor)
    version = build_pathway(owner_unit=units["ED"], actor=actor, resources=resources)
    stdout.write(f"Pathway {CODE} v{version.number} ready (NCC 2023/24 unit costs).")
    path = sepsis_log_path()
    if not path.exists():
        stdout.write(f"The 4TU Sepsis log is not at {path}; SEPSIS-ED has no imported episodes.")
        return
    already = Episode.objects.filter(version__pathway__code=CODE).count()
    if already:
        # Loaded by an earlier run: importing again would change nothing but the audit trail.
        stdout.write(f"The 4TU Sepsis log is already imported ({already} episodes). Data: {CITATION}.")
        return
    summary = import_events(
        path,
        mapping=load_mapping(MAPPING_PATH),
        pathway_code=CODE,
        org_unit=units["ED"],
        closed=True,
        actor=actor,
    )
    stdout.write(
        f"Imported the 4TU Sepsis log: {summary.episodes_created} episodes, {summary.events_created} events, "
        f"{sum(summary.variances.values())} variances detected ({summary.seconds:.1f} s). Data: {CITATION}."
    )
