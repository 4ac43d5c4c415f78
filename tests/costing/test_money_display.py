"""Money reads one way everywhere: the currency's symbol on figures and rates, in column headings."""

from decimal import Decimal

from costing.money import column_header, with_direction
from costing.report_views import _card
from costing.suppression import SUPPRESSED
from costing.templatetags.money import direction_css, money, money_uf, percent, rate


def test_cards_rates_and_amounts_carry_the_symbol(settings):
    settings.CURRENCY = "GBP"
    assert _card("Actual cost", "742466.28", "money")["text"] == "£742,466.28"
    assert _card("Variance", "34262.34", "variance")["text"] == "£34,262.34 U"
    assert _card("Variance", "-12.5", "variance")["text"] == "£12.50 F"
    assert _card("Cost of system-caused variance", SUPPRESSED, "variance")["text"] == SUPPRESSED
    assert _card("Episodes costed", 134, "int")["text"] == "134"
    assert money(Decimal("4167.13")) == "£4,167.13"
    assert rate(Decimal("4.500000")) == "£4.50"
    assert rate(Decimal("1.875000"), "GBP") == "£1.875"
    assert rate(Decimal("2.5"), "CHF") == "2.50 CHF"


def test_report_columns_name_their_unit(settings):
    settings.CURRENCY = "EUR"
    assert column_header("Expected", "money") == "Expected (€)"
    assert column_header("System-caused", "variance") == "System-caused (€)"
    assert column_header("Readmitted within 30 days", "share") == "Readmitted within 30 days (%)"
    assert column_header("Episodes", "int") == "Episodes"


def test_variances_and_shares_are_written_as_finance_and_clinicians_read_them(settings):
    settings.CURRENCY = "GBP"
    assert money_uf(Decimal("1163.375")) == "£1,163.38 U"
    assert money_uf(Decimal("-28.125")) == "£28.13 F"
    assert money_uf(Decimal("0.001")) == "£0.00"  # rounds to nothing: no direction
    assert direction_css(Decimal("0.001")) == ""
    assert direction_css(Decimal("-5")) == "favourable"
    assert with_direction(Decimal("-0.005")) == "0.01 F"
    assert [percent(Decimal(s)) for s in ("0.1", "0.125", "0.333", "0.004", "1")] == ["10", "13", "33", "0.4", "100"]
