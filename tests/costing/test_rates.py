"""Rates are effective-dated by NHS financial year (April to March)."""

from datetime import date
from decimal import Decimal

import pytest

from accounts.models import AuditEvent
from costing.models import CostRate
from costing.rates import cost_rate_set, rates_in_force
from costing.standard import version_standard_cost
from tests.pathways.tkr import build_tkr


@pytest.fixture
def tkr(org):
    """TKR with FY 2025/26 rates, plus FY 2024/25 rates 5% lower."""
    objects = build_tkr(org["ORTHO"], financial_year=2025)
    for code, rate in objects["rates"].items():
        cost_rate_set(
            resource=objects[code],
            financial_year=2024,
            rate=rate.rate * Decimal("0.95"),
            source="2024/25 test rate",
        )
    return objects


def test_it_uses_the_rate_of_the_episode_financial_year(tkr):
    consultant = tkr["CONSULTANT"].pk

    assert rates_in_force([consultant], date(2025, 4, 1))[consultant].financial_year == 2025
    assert rates_in_force([consultant], date(2026, 3, 31))[consultant].financial_year == 2025
    # 31 March 2025 is still FY 2024/25
    assert rates_in_force([consultant], date(2025, 3, 31))[consultant].financial_year == 2024


def test_it_keeps_the_latest_rate_in_force_until_a_newer_year_is_set(tkr):
    consultant = tkr["CONSULTANT"].pk

    in_2027 = rates_in_force([consultant], date(2027, 6, 1))[consultant]

    assert (in_2027.financial_year, in_2027.rate) == (2025, Decimal("1.875"))
    assert rates_in_force([consultant], date(2023, 6, 1)) == {}


def test_it_costs_an_episode_with_the_rates_in_force_on_its_date(tkr):
    version = tkr["version"]

    this_year = version_standard_cost(version, on=date(2025, 10, 1)).expected_cost
    last_year = version_standard_cost(version, on=date(2025, 1, 15)).expected_cost

    assert this_year == Decimal("4167.125")
    assert last_year == Decimal("4167.125") * Decimal("0.95")


def test_it_fetches_rates_for_many_resources_in_one_query(tkr, django_assert_num_queries):
    ids = [tkr[code].pk for code in tkr["rates"]]
    with django_assert_num_queries(1):
        rates = rates_in_force(ids, date(2025, 5, 1))
    assert {r.financial_year for r in rates.values()} == {2025}
    assert len(rates) == 8


def test_it_replaces_a_year_rate_and_audits_the_change(tkr, fred):
    rate, outcome = cost_rate_set(
        resource=tkr["IMPLANT"],
        financial_year=2025,
        rate=Decimal("2200"),
        source="Supplier price list 2025",
        actor=fred,
        reason="new supplier contract",
    )

    assert outcome == "updated"
    assert CostRate.objects.get(resource=tkr["IMPLANT"], financial_year=2025).rate == Decimal("2200")
    event = AuditEvent.objects.filter(action="cost_rate.update").latest("id")
    assert event.actor == fred
    assert event.detail["before"]["rate"] == "2000.000000"
    assert event.detail["after"]["rate"] == "2200.000000"
    assert event.detail["reason"] == "new supplier contract"


def test_it_writes_nothing_when_the_same_rate_is_set_again(tkr):
    audits = AuditEvent.objects.count()

    _, outcome = cost_rate_set(
        resource=tkr["IMPLANT"],
        financial_year=2025,
        rate=Decimal("2000.000"),
        price_year=2025,
        source="DOMAIN.md worked example (elective knee replacement)",
    )

    assert outcome == "unchanged"
    assert AuditEvent.objects.count() == audits
