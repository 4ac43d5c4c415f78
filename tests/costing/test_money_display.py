"""Money reads one way everywhere: the currency's symbol on figures and rates, in column headings."""

from decimal import Decimal

from costing.money import column_header
from costing.report_views import _card
from costing.suppression import SUPPRESSED
from costing.templatetags.money import money, rate


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
