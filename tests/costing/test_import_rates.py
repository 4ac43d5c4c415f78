"""Rates from files: our CSV and the NHS National Cost Collection schedule, with a row-by-row report."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from costing.imports import import_ncc, import_rates_csv
from costing.models import CostRate
from costing.rates import capacity_cost_rate, cost_rate_set
from demo.sepsis import shared_data_dir
from pathways.models import Resource
from tests.conftest import require

NCC_FILE = shared_data_dir() / "ncc_2023_24.csv"

NCC_SAMPLE = (
    "\ufeffService Code,Dept or Currency Code,Dept or Currency Desc,Activity,Unit cost,Cost\n"
    'Emergency Care,VB09Z ," Emergency Medicine, Category 1 Investigation with Category 1-2 Treatment",4979457,177.0078,881402518.6\n'
    'Critical care,XC06Z ," Adult Critical Care, 1 Organ Supported",488918,1737.829,849655888.7\n'
    "Directly Accessed Pathology Services,PATH04 , Clinical biochemistry,300000000,1.5251,457530000\n"
    "Daycase,RD97Z , Same Day Diagnostic Imaging Admission or Attendance,574,0,0\n"
    "Elective Inpatients,HN24C , Very Major Knee Procedures for Non-Trauma with CC Score 2+,1000,not-a-number,0\n"
    ",HN24D , Missing service,10,100,1000\n"
)


def test_it_imports_ncc_rows_as_resources_with_rates(fred):
    result = import_ncc(data=NCC_SAMPLE.encode("utf-8"), actor=fred, financial_year=2023, filename="ncc.csv")

    assert result.counts() == {
        "rows": 6,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 3,
        "resources_created": 3,
    }
    ed = Resource.objects.get(code="NCC-VB09Z-EC")
    assert (ed.kind, ed.unit) == ("overhead", "item")
    assert "Emergency Medicine, Category 1" in ed.name
    rate = CostRate.objects.get(resource=ed, financial_year=2023)
    assert rate.rate == Decimal("177.0078")
    assert rate.source == "NHS National Cost Collection 2023/24 national schedule: Emergency Care, VB09Z"
    assert rate.updated_by == fred
    assert Resource.objects.get(code="NCC-XC06Z-CC").unit == "day"
    assert Resource.objects.get(code="NCC-PATH04-PATH").kind == "consumable"


def test_it_reports_each_rejected_ncc_row_with_its_line_and_reason(fred):
    result = import_ncc(data=NCC_SAMPLE, actor=fred, financial_year=2023)

    assert [(r.line, r.reason) for r in result.rejected] == [
        (5, "the unit cost is 0: NCC publishes no cost for this currency here"),
        (6, "the rate 'not-a-number' is not a number"),
        (7, "Service Code is empty"),
    ]


def test_re_importing_the_same_ncc_file_changes_nothing(fred):
    import_ncc(data=NCC_SAMPLE, actor=fred, financial_year=2023)
    before = list(CostRate.objects.order_by("id").values_list("id", "rate", "updated_at"))

    again = import_ncc(data=NCC_SAMPLE, actor=fred, financial_year=2023)

    assert (len(again.created), len(again.updated), len(again.unchanged)) == (0, 0, 3)
    assert list(CostRate.objects.order_by("id").values_list("id", "rate", "updated_at")) == before
    assert Resource.objects.filter(code__startswith="NCC-").count() == 3


def test_a_changed_ncc_figure_is_reported_as_updated_with_the_old_rate(fred):
    import_ncc(data=NCC_SAMPLE, actor=fred, financial_year=2023)

    result = import_ncc(data=NCC_SAMPLE.replace("177.0078", "180.5"), actor=fred, financial_year=2023)

    [row] = result.updated
    assert row.code == "NCC-VB09Z-EC" and row.rate_changed
    assert [(c.field, c.before, c.after, c.was, c.now) for c in row.changes] == [
        ("rate", Decimal("177.007800"), Decimal("180.500000"), "£177.0078", "£180.5000")
    ]
    event = AuditEvent.objects.filter(action="cost_rate.import_ncc").latest("id")
    assert event.detail["updated"] == [
        {"code": "NCC-VB09Z-EC", "fy": 2023, "before": {"rate": "177.007800"}, "after": {"rate": "180.500000"}}
    ]


def test_a_local_source_note_replaced_by_the_file_is_reported_and_audited(fred):
    import_ncc(data=NCC_SAMPLE, actor=fred, financial_year=2023)
    rate = CostRate.objects.get(resource__code="NCC-XC06Z-CC", financial_year=2023)
    note = "NCC 2023/24 XC06Z: confirm against the trust's own ECDS grouping"
    cost_rate_set(resource=rate.resource, financial_year=2023, rate=rate.rate, source=note, includes=rate.includes)

    result = import_ncc(data=NCC_SAMPLE, actor=fred, financial_year=2023)

    [row] = result.updated
    assert (row.line, row.code, row.rate_changed) == (3, "NCC-XC06Z-CC", False)
    national = "NHS National Cost Collection 2023/24 national schedule: Critical care, XC06Z"
    assert [(c.field, c.before, c.after) for c in row.changes] == [("source", note, national)]
    assert (result.rates_changed, result.details_changed) == ([], [row])
    assert CostRate.objects.get(pk=rate.pk).source == national
    event = AuditEvent.objects.filter(action="cost_rate.import_ncc").latest("id")
    assert event.detail["updated"] == [
        {"code": "NCC-XC06Z-CC", "fy": 2023, "before": {"source": note}, "after": {"source": national}}
    ]


def test_a_file_figure_clears_the_calculators_working_and_says_so(fred):
    import_rates_csv(data=RATES_CSV, actor=fred)
    theatre = Resource.objects.get(code="THEATRE")
    cost_rate_set(
        resource=theatre,
        financial_year=2025,
        source="Theatre budget 2025/26",
        includes="Theatre overheads",
        ccr=capacity_cost_rate(
            capacity_cost=Decimal("459000"), theoretical_minutes=Decimal("120000"), practical_factor=Decimal("0.85")
        ),
    )

    result = import_rates_csv(data=RATES_CSV, actor=fred)

    [row] = result.updated
    assert [(c.label, c.was, c.now) for c in row.changes] == [
        ("Capacity cost working", "£459,000.00 / (120000 min x 0.85)", "none")
    ]
    assert CostRate.objects.get(resource=theatre, financial_year=2025).capacity_cost is None


def test_it_refuses_a_file_without_the_ncc_columns(fred):
    with pytest.raises(ValidationError, match="no column 'Unit cost'"):
        import_ncc(
            data="Service Code,Dept or Currency Code,Dept or Currency Desc,Activity,Cost\n",
            actor=fred,
            financial_year=2023,
        )


def test_it_refuses_a_file_that_is_not_utf8(fred):
    with pytest.raises(ValidationError, match="not UTF-8"):
        import_rates_csv(
            data="resource_code,financial_year,rate,source\nTHÉATRE,2025,1,x\n".encode("latin-1"), actor=fred
        )


RATES_CSV = (
    "resource_code,financial_year,rate,source,price_year,includes,resource_name,kind,unit\n"
    "THEATRE,2025/26,4.50,Theatre budget 2025/26,2025,Theatre overheads,Theatre (room and kit),room,minute\n"
    "THEATRE,2024,4.275,Theatre budget 2024/25,,,,,\n"
    "GHOST,2025,1,somewhere,,,,,\n"
    "THEATRE,2025,4.60,duplicate,,,,,\n"
    "THEATRE,2025/27,4.60,bad year,,,,,\n"
    "BED,2025,180,Ward budget,,,Bed-day,bed_day,night\n"
    "BED,2025,-5,Ward budget,,,Bed-day,bed_day,day\n"
    "BED,2025,1.1234567,Ward budget,,,Bed-day,bed_day,day\n"
    "THEATRE,2023,4.1,,,,,,\n"
)


def test_it_imports_our_csv_and_explains_every_rejection(fred):
    result = import_rates_csv(data=RATES_CSV, actor=fred, filename="rates.csv")

    assert [(r.line, r.code, r.financial_year) for r in result.created] == [(2, "THEATRE", 2025), (3, "THEATRE", 2024)]
    assert [(r.line, r.reason) for r in result.rejected] == [
        (4, "no resource GHOST: add it first, or give resource_name, kind and unit to create it"),
        (5, "repeats THEATRE for FY 2025/26 (first on line 2)"),
        (6, "the financial year '2025/27' does not run April 2025 to March 2026"),
        (7, "unit 'night' is not one of day, item, minute"),
        (8, "the rate is negative"),
        (9, "the rate has more than 6 decimal places"),
        (10, "source is empty: say where the figure comes from"),
    ]
    theatre = CostRate.objects.get(resource__code="THEATRE", financial_year=2025)
    assert (theatre.rate, theatre.includes, theatre.price_year) == (Decimal("4.5"), "Theatre overheads", 2025)
    assert Resource.objects.get(code="THEATRE").kind == "room"


def test_re_importing_our_csv_is_idempotent(fred):
    import_rates_csv(data=RATES_CSV, actor=fred)

    again = import_rates_csv(data=RATES_CSV, actor=fred)

    assert [r.line for r in again.unchanged] == [2, 3]
    assert not again.created and not again.updated
    assert CostRate.objects.count() == 2


@pytest.mark.slow
def test_it_imports_the_whole_ncc_2023_24_schedule(fred):
    require(NCC_FILE.exists(), f"the NCC 2023/24 schedule is not at {NCC_FILE}")

    result = import_ncc(data=NCC_FILE.read_bytes(), actor=fred, financial_year=2023, filename=NCC_FILE.name)

    assert len(result.rows) == 11303
    assert len(result.rejected) == 3  # the three zero unit costs
    assert len(result.created) == 11300
    assert CostRate.objects.get(resource__code="NCC-XC06Z-CC").rate == Decimal("1737.829")
