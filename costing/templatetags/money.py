"""Money in templates: ``{{ amount|money }}`` -> "£4,167.13" (half up, for display only)."""

from decimal import ROUND_HALF_UP, Decimal

from django import template

from ..models import financial_year_label
from ..money import DIRECTION_CSS, direction_of, display, priced

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "") -> str:
    if amount is None:
        return ""
    return priced(display(amount), currency)


@register.filter
def money_uf(amount: Decimal | None, currency: str = "") -> str:
    """A variance with its direction, as finance writes it: "£1,163.38 U" (adverse), "£28.13 F"; "£0.00"."""
    if amount is None:
        return ""
    mark = direction_of(amount)
    text = priced(display(abs(amount)), currency)
    return f"{text} {mark}" if mark else priced("0.00", currency)


@register.filter
def direction_css(amount: Decimal | None) -> str:
    """The CSS class that colours a variance: adverse (costs more than planned), favourable, or none."""
    return "" if amount is None else DIRECTION_CSS[direction_of(amount)]


@register.filter
def percent(share: Decimal | None) -> str:
    """A share as a percentage, half up: 0.125 -> "13", 0.333 -> "33"; below 1%, to a tenth: 0.004 -> "0.4"."""
    if share is None:
        return ""
    value = Decimal(share) * 100
    if 0 < value < 1:
        return f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}"
    return f"{value.quantize(Decimal('1'), rounding=ROUND_HALF_UP)}"


@register.filter
def rate(value: Decimal | None, currency: str = "") -> str:
    """A per-unit rate, written like other money but to its own precision: 1.875000 -> "£1.875",
    4.5 -> "£4.50" (no padding zeros, at least two places; a currency without a symbol follows
    as its code: "4.50 CHF")."""
    if value is None:
        return ""
    text = f"{Decimal(value).normalize():f}"
    whole, _, fraction = text.partition(".")
    number = f"{int(whole):,}.{fraction.ljust(2, '0')}" if not whole.startswith("-") else f"{text}"
    return priced(number, currency)


@register.filter
def plain(value) -> str:
    if value is None:
        return ""
    return f"{Decimal(value).normalize():f}"


@register.filter
def fy(year: int | None) -> str:
    """2025 -> "2025/26" (NHS financial year, April to March)."""
    return "" if year is None else financial_year_label(int(year))
