"""The standard cost of a pathway: DOMAIN.md's knee replacement, to the penny."""

from datetime import date
from decimal import Decimal

import pytest

from costing.money import display
from costing.standard import expected_episode_cost, step_standard_cost, version_standard_cost
from tests.pathways.tkr import build_tkr

ON = date(2025, 9, 1)


@pytest.fixture
def tkr(org):
    return build_tkr(org["ORTHO"])


def test_it_reproduces_the_knee_example_expected_cost(tkr):
    cost = version_standard_cost(tkr["version"], on=ON)

    assert cost.expected_cost == Decimal("4167.125")
    assert display(cost.expected_cost) == "4,167.13"
    assert expected_episode_cost(tkr["version"], on=ON) == Decimal("4167.125")


def test_it_costs_each_step_as_the_worked_example(tkr):
    cost = version_standard_cost(tkr["version"], on=ON)

    shown = {sc.step.code: display(sc.expected_cost) for sc in cost.steps}
    assert shown == {"PREOP": "49.13", "SURGERY": "3,017.75", "WARD-STAY": "1,044.00", "PHYSIO": "56.25"}
    ward = cost.step("WARD-STAY")
    assert (ward.cost, ward.expected_count) == (Decimal("348"), Decimal("3"))
    assert cost.step("PHYSIO").cost == Decimal("28.125")


def test_it_totals_stages_in_order(tkr):
    cost = version_standard_cost(tkr["version"], on=ON)

    assert [(s.stage.name, display(s.expected_cost)) for s in cost.stages] == [
        ("Pre-operative", "49.13"),
        ("Theatre", "3,017.75"),
        ("Ward and rehabilitation", "1,100.25"),
    ]


def test_it_shows_where_a_step_cost_comes_from(tkr):
    surgery = step_standard_cost(tkr["SURGERY"], on=ON)

    lines = {line.resource.code: line for line in surgery.lines}
    nurses = lines["THEATRE-NURSE"]
    assert (nurses.headcount, nurses.quantity, nurses.rate_value, nurses.cost) == (
        2,
        Decimal("90"),
        Decimal("0.8"),
        Decimal("144"),
    )
    assert nurses.financial_year == 2025
    assert "DOMAIN.md" in nurses.rate_source
    assert lines["IMPLANT"].cost == Decimal("2000")
    assert sum(line.cost for line in surgery.lines) == surgery.cost == Decimal("3017.75")


def test_it_reports_resources_without_a_rate_instead_of_hiding_them(tkr):
    # Rates exist from FY 2025/26 only: an episode in FY 2024/25 has none in force.
    cost = version_standard_cost(tkr["version"], on=date(2025, 3, 31))

    assert cost.expected_cost == 0
    assert [r.code for r in cost.missing_rates] == [
        "BED-DAY",
        "CONSULTANT",
        "CONSUMABLES",
        "IMPLANT",
        "PHYSIOTHERAPIST",
        "THEATRE",
        "THEATRE-NURSE",
        "WARD-NURSE",
    ]


def test_it_costs_a_version_in_four_queries(tkr, django_assert_num_queries):
    with django_assert_num_queries(4):
        cost = version_standard_cost(tkr["version"], on=ON)
        lines = [(line.resource.code, line.rate_source) for sc in cost.steps for line in sc.lines]
    assert len(lines) == 10


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("4167.125", "4,167.13"),
        ("49.125", "49.13"),
        ("0.005", "0.01"),
        ("1163.375", "1,163.38"),
        ("-28.125", "-28.13"),
        ("1000000", "1,000,000.00"),
    ],
)
def test_it_displays_money_rounded_half_up_with_separators(amount, shown):
    assert display(Decimal(amount)) == shown
