"""Money in templates: ``{{ amount|money }}`` -> "£4,167.13" (half up, for display only)."""

from decimal import Decimal

from django import template
from django.conf import settings

from ..models import financial_year_label
from ..money import display

register = template.Library()

SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


@register.filter
def money(amount: Decimal | None, currency: str = "") -> str:
    if amount is None:
        return ""
    symbol = SYMBOLS.get(currency or settings.CURRENCY, "")
    text = display(amount)
    if text.startswith("-"):
        return f"-{symbol}{text[1:]}"
    return f"{symbol}{text}"


@register.filter
def rate(value: Decimal | None) -> str:
    """A per-unit rate without padding zeros but at least two places: 1.875000 -> "1.875", 4.5 -> "4.50"."""
    if value is None:
        return ""
    text = f"{Decimal(value).normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}.{fraction.ljust(2, '0')}" if not whole.startswith("-") else f"{text}"


@register.filter
def plain(value) -> str:
    if value is None:
        return ""
    return f"{Decimal(value).normalize():f}"


@register.filter
def fy(year: int | None) -> str:
    """2025 -> "2025/26" (NHS financial year, April to March)."""
    return "" if year is None else financial_year_label(int(year))
