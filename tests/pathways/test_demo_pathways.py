"""The demo pathways: TKR is DOMAIN.md's example to the penny; HIP-FRACTURE has a history."""

import io
from datetime import date
from decimal import Decimal

from costing.models import CostRate
from costing.money import display
from costing.standard import version_standard_cost
from demo import org as demo_org
from demo import pathways as demo_pathways
from pathways.models import Pathway, PathwayChange, PathwayVersion, Step


def _load():
    units = demo_org.load_org()
    users = {u.username: u for u in demo_org.load_users(units)}
    demo_pathways.load(units=units, users=users, stdout=io.StringIO())


def test_the_demo_tkr_costs_4167_13_and_older_rates_apply_before_april_2025(db):
    _load()
    tkr = PathwayVersion.objects.published().get(pathway__code="TKR")

    assert display(version_standard_cost(tkr, on=date(2025, 10, 1)).expected_cost) == "4,167.13"
    assert version_standard_cost(tkr, on=date(2025, 10, 1)).expected_cost == Decimal("4167.125")
    assert version_standard_cost(tkr, on=date(2025, 3, 31)).expected_cost < Decimal("4167.125")
    consultant = CostRate.objects.get(resource__code="CONSULTANT", financial_year=2025)
    assert (consultant.rate, consultant.practical_factor) == (Decimal("1.875"), Decimal("0.850"))


def test_the_demo_hip_fracture_follows_nice_and_has_a_retired_first_version(db):
    _load()
    hip = PathwayVersion.objects.get(pathway__code="HIP-FRACTURE", status="published")

    assert hip.number == 2
    assert PathwayVersion.objects.get(pathway__code="HIP-FRACTURE", number=1).status == "retired"
    surgery = hip.steps.get(code="SURGERY")
    assert (surgery.window_min_minutes, surgery.window_max_minutes) == (0, 2160)
    assert hip.steps.get(code="ORTHOGERI").window_max_minutes == 4320
    assert hip.steps.filter(code="DELIRIUM").exists()
    assert "NICE CG124" in hip.pathway.description and "QS16" in hip.pathway.description
    ed = CostRate.objects.get(resource__code="NCC-VB07Z-EC", financial_year=2023)
    assert ed.rate == Decimal("359.288")
    assert "National Cost Collection 2023/24" in ed.source
    assert version_standard_cost(hip, on=date(2025, 10, 1)).missing_rates == []


def test_loading_the_demo_pathways_twice_changes_nothing(db):
    _load()
    counts = (
        PathwayVersion.objects.count(),
        Step.objects.count(),
        PathwayChange.objects.count(),
        CostRate.objects.count(),
    )
    from accounts.models import AuditEvent

    audits = AuditEvent.objects.count()

    _load()

    assert counts == (
        PathwayVersion.objects.count(),
        Step.objects.count(),
        PathwayChange.objects.count(),
        CostRate.objects.count(),
    )
    assert AuditEvent.objects.count() == audits


def test_the_demo_text_shown_to_users_does_not_cite_the_developer_documents(db):
    _load()
    shown = [
        *Pathway.objects.values_list("description", flat=True),
        *PathwayVersion.objects.values_list("change_note", flat=True),
        *PathwayChange.objects.values_list("note", flat=True),
        *Step.objects.values_list("guidance", flat=True),
        *Step.objects.values_list("evidence", flat=True),
        *CostRate.objects.values_list("source", flat=True),
        *CostRate.objects.values_list("includes", flat=True),
    ]
    assert shown and not [text for text in shown if "DOMAIN" in text]
    tkr = PathwayVersion.objects.published().get(pathway__code="TKR")
    assert "worked costing example" in tkr.pathway.description
