"""The SEPSIS-ED pathway the import issue specifies, as the demo ships it, costed from NCC 2023/24."""

import csv
import io
from decimal import Decimal

import pytest

from costing.models import CostRate
from costing.standard import expected_episode_cost
from demo import sepsis
from pathways.models import PathwayVersion, Step
from tests.conftest import require

pytestmark = pytest.mark.django_db

# Issue #7's table: code -> (anchor, window min, window max, mandatory)
TABLE = {
    "ER-REGISTRATION": (None, None, None, True),
    "ER-TRIAGE": ("ER-REGISTRATION", 0, 15, True),
    "SEPSIS-TRIAGE": ("ER-REGISTRATION", 0, 15, True),
    "LACTATE": ("SEPSIS-TRIAGE", 0, 60, True),
    "BLOODS": ("SEPSIS-TRIAGE", 0, 60, True),
    "IV-ANTIBIOTICS": ("SEPSIS-TRIAGE", 0, 60, True),
    "IV-FLUIDS": ("SEPSIS-TRIAGE", 0, 60, True),
    "ADMISSION": ("SEPSIS-TRIAGE", 0, 240, False),
    "DISCHARGE": (None, 0, None, True),
}


def test_it_is_published_owned_by_the_ed_and_exactly_as_the_issue_table(org):
    version = sepsis.build_pathway(owner_unit=org["ED"])

    assert version.status == PathwayVersion.Status.PUBLISHED
    assert version.pathway.owner_unit == org["ED"]
    steps = Step.objects.filter(version=version).select_related("anchor").order_by("stage__order", "order")
    found = {
        s.code: (s.anchor.code if s.anchor else None, s.window_min_minutes, s.window_max_minutes, s.mandatory)
        for s in steps
    }
    assert list(found) == list(TABLE)
    assert found == TABLE


def test_loading_it_twice_changes_nothing(org):
    first = sepsis.build_pathway(owner_unit=org["ED"])
    rates = CostRate.objects.count()

    again = sepsis.build_pathway(owner_unit=org["ED"])
    sepsis.load_resources()

    assert again == first
    assert PathwayVersion.objects.filter(pathway__code="SEPSIS-ED").count() == 1
    assert CostRate.objects.count() == rates


def test_its_costs_come_from_ncc_and_each_rate_says_which_currency(org):
    version = sepsis.build_pathway(owner_unit=org["ED"])

    rates = {r.resource.code: r for r in CostRate.objects.filter(financial_year=2023).select_related("resource")}
    assert set(rates) == {"NCC-VB05Z-EC", "NCC-PATH04-PATH", "NCC-PATH05-PATH", "NCC-XC06Z-CC"}
    for code, rate in rates.items():
        currency = code.split("-")[1]
        assert f"2023/24 National Cost Collection, national schedule, {currency}" in rate.source
        assert rate.price_year == 2023
    # The back-dated rates say so in full: a source cut to the field's length lost the end of its note.
    for rate in CostRate.objects.exclude(financial_year=2023):
        assert rate.source.endswith("Back-dated to FY 2013/14 for the 4TU log's dates."), rate.source
    # E = ED attendance + lactate (biochemistry) + CRP (biochemistry) + leucocytes (haematology)
    #     + 0.1 critical-care bed-day per admission
    expected = Decimal("471.8492") + 2 * Decimal("1.5251") + Decimal("3.0956") + Decimal("0.1") * Decimal("1737.829")
    assert expected_episode_cost(version) == expected


def test_the_ncc_figures_are_those_of_the_shared_schedule():
    path = sepsis.shared_data_dir() / "ncc_2023_24.csv"
    require(path.exists(), f"the NCC 2023/24 schedule is not at {path}")
    published = {}
    for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))):
        published[(row["Service Code"].strip(), row["Dept or Currency Code"].strip())] = Decimal(row["Unit cost"])
    services = {"EC": "Emergency Care", "PATH": "Directly Accessed Pathology Services", "CC": "Critical care"}
    for code, _name, _kind, _unit, currency, cost, _why, _includes in sepsis.RESOURCES:
        service = services[code.rsplit("-", 1)[1]]
        assert published[(service, currency)] == Decimal(cost), code


def test_the_demo_imports_the_real_log_when_it_is_at_hand_and_only_once(org, tmp_path, monkeypatch):
    from io import StringIO

    from tests.variances.importing import GOOD, T0, write_xes
    from variances.models import Episode

    monkeypatch.setenv("SHARED_DATA_DIR", str(tmp_path))
    out = StringIO()
    sepsis.load(units=org, users={}, stdout=out)
    assert f"The 4TU Sepsis log is not at {tmp_path / sepsis.LOG_FILE_NAME}" in out.getvalue()

    write_xes(tmp_path / sepsis.LOG_FILE_NAME, [("A", T0, GOOD), ("B", T0, GOOD)], gz=True)
    sepsis.load(units=org, users={}, stdout=out)
    sepsis.load(units=org, users={}, stdout=out)

    assert "Imported the 4TU Sepsis log: 2 episodes" in out.getvalue()
    assert "The 4TU Sepsis log is already imported (2 episodes)" in out.getvalue()
    assert sepsis.CITATION in out.getvalue()
    assert set(Episode.objects.values_list("org_unit__code", "status")) == {("ED", "completed")}
