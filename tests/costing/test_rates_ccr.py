"""Capacity cost rate: cost of capacity supplied / practical capacity, factor recorded."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from costing.models import CostRate
from costing.rates import capacity_cost_rate, cost_rate_set
from pathways.models import Resource


def test_it_divides_capacity_cost_by_practical_not_theoretical_minutes():
    # A consultant: 140,000 a year for 87,360 theoretical minutes (52 weeks x 28 h),
    # 80% practical: 69,888 minutes -> 2.003205 per minute.
    ccr = capacity_cost_rate(
        capacity_cost=Decimal("140000"), theoretical_minutes=Decimal("87360"), practical_factor=Decimal("0.80")
    )

    assert ccr.practical_minutes == Decimal("69888.00")
    assert ccr.rate == Decimal("2.003205")


def test_it_defaults_to_an_85_percent_practical_factor():
    ccr = capacity_cost_rate(capacity_cost=Decimal("85000"), theoretical_minutes=Decimal("100000"))

    assert ccr.practical_factor == Decimal("0.85")
    assert ccr.rate == Decimal("1.000000")


@pytest.mark.parametrize(
    ("cost", "minutes", "factor", "field"),
    [
        ("-1", "1000", "0.8", "capacity_cost"),
        ("1000", "0", "0.8", "theoretical_minutes"),
        ("1000", "1000", "0", "practical_factor"),
        ("1000", "1000", "1.2", "practical_factor"),
    ],
)
def test_it_refuses_impossible_inputs_by_field(cost, minutes, factor, field):
    with pytest.raises(ValidationError) as err:
        capacity_cost_rate(
            capacity_cost=Decimal(cost), theoretical_minutes=Decimal(minutes), practical_factor=Decimal(factor)
        )
    assert field in err.value.message_dict


def test_it_stores_the_working_beside_the_rate(db):
    theatre = Resource.objects.create(code="THEATRE", name="Theatre", kind="room", unit="minute")
    ccr = capacity_cost_rate(
        capacity_cost=Decimal("1200000"), theoretical_minutes=Decimal("300000"), practical_factor=Decimal("0.85")
    )

    cost_rate_set(resource=theatre, financial_year=2025, ccr=ccr, source="Theatre budget 2025/26")

    stored = CostRate.objects.get(resource=theatre, financial_year=2025)
    assert stored.rate == Decimal("4.705882")
    assert (stored.capacity_cost, stored.theoretical_capacity_minutes, stored.practical_factor) == (
        Decimal("1200000.00"),
        Decimal("300000.00"),
        Decimal("0.850"),
    )
