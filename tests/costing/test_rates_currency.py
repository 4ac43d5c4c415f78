"""Rates are in the configured currency only: costs add rates together without converting."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from costing.imports import import_rates_csv
from costing.models import CostRate
from costing.rates import cost_rate_set
from costing.standard import expected_episode_cost
from tests.conftest import login
from tests.pathways.tkr import build_tkr

pytestmark = pytest.mark.django_db


@pytest.fixture
def tkr(org):
    return build_tkr(org["ORTHO"], financial_year=2025)


def test_a_rate_in_another_currency_is_refused_and_the_standard_cost_stays_in_pounds(tkr, fred):
    audits = AuditEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        cost_rate_set(
            resource=tkr["IMPLANT"],
            financial_year=2026,
            rate=Decimal("2500"),
            currency="USD",
            source="US supplier list",
            actor=fred,
        )

    assert "Rates are in GBP" in refused.value.message_dict["currency"][0]
    assert not CostRate.objects.filter(financial_year=2026).exists()
    assert AuditEvent.objects.count() == audits
    # Was 4,667.125: the 2,500 dollars counted as pounds beside the other rates.
    assert expected_episode_cost(tkr["version"], on=date(2026, 6, 1)) == Decimal("4167.125")


def test_a_rate_without_a_currency_takes_the_configured_one(tkr, settings):
    settings.CURRENCY = "EUR"

    rate, outcome = cost_rate_set(resource=tkr["IMPLANT"], financial_year=2026, rate=Decimal("2300"), source="EU list")

    assert (outcome, rate.currency) == ("created", "EUR")


def test_the_csv_import_refuses_a_row_in_another_currency_and_keeps_the_others(tkr, fred):
    csv = (
        "resource_code,financial_year,rate,source,currency\n"
        "IMPLANT,2026,2500,US supplier list,USD\n"
        "CONSUMABLES,2026,310,Supplies budget,GBP\n"
        "BED-DAY,2026,190,Ward budget,\n"
    )

    result = import_rates_csv(data=csv, actor=fred)

    assert [(r.line, r.reason) for r in result.rejected] == [
        (
            2,
            "the rate is in USD, not GBP: convert it to GBP first (costs add rates together, so it would be counted as GBP)",
        )
    ]
    assert [r.code for r in result.created] == ["CONSUMABLES", "BED-DAY"]
    assert set(CostRate.objects.filter(financial_year=2026).values_list("currency", flat=True)) == {"GBP"}


def test_the_admin_refuses_a_rate_in_another_currency_on_its_field(client, tkr, erin):
    rate = CostRate.objects.get(resource=tkr["IMPLANT"], financial_year=2025)
    login(client, erin)

    response = client.post(
        f"/admin/costing/costrate/{rate.pk}/change/",
        {
            "resource": tkr["IMPLANT"].pk,
            "financial_year": 2025,
            "rate": "2500",
            "currency": "USD",
            "price_year": 2025,
            "source": "US supplier list",
            "includes": "",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert "Rates are in GBP" in errors["currency"][0]
    rate.refresh_from_db()
    assert (rate.rate, rate.currency) == (Decimal("2000"), "GBP")
