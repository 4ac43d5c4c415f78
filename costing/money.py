"""Money for display. Arithmetic stays at full Decimal precision everywhere else.

NHS finance rounds half up (4,167.125 shows as 4,167.13), not Python's default
banker's rounding, so ``display`` quantizes explicitly.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

CENT = Decimal("0.01")


def round_money(amount: Decimal) -> Decimal:
    """Round half up to two places: for display and for figures handed to people, never for storage."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def display(amount: Decimal | None) -> str:
    """``Decimal("4167.125")`` -> ``"4,167.13"``; ``None`` -> ``""``."""
    if amount is None:
        return ""
    return f"{round_money(amount):,.2f}"


def direction_of(amount: Decimal) -> str:
    """U (adverse: costs more than planned), F (favourable) or "" where it rounds to nothing."""
    rounded = round_money(amount)
    if not rounded:
        return ""
    return "U" if rounded > 0 else "F"


# How a page colours a variance of each direction.
DIRECTION_CSS = {"U": "adverse", "F": "favourable", "": ""}


def with_direction(amount: Decimal) -> str:
    """A variance as finance writes it: "1,163.38 U", "28.13 F"; "0.00" where it rounds to nothing."""
    mark = direction_of(amount)
    return f"{display(abs(amount))} {mark}" if mark else "0.00"


SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}
MONEY_KINDS = ("money", "variance")


def priced(number: str, code: str = "") -> str:
    """A formatted amount with its currency: "£4.50", "-£12.00"; "4.50 CHF" where there is no symbol."""
    code = code or settings.CURRENCY
    symbol = SYMBOLS.get(code)
    if symbol is None:
        return f"{number} {code}"
    return f"-{symbol}{number[1:]}" if number.startswith("-") else f"{symbol}{number}"


def currency_symbol(code: str = "") -> str:
    """ "£" for GBP (the configured currency by default); the code itself where there is no symbol."""
    code = code or settings.CURRENCY
    return SYMBOLS.get(code, code)


def column_header(label: str, kind: str) -> str:
    """A report column's heading with its unit: "Expected (£)", "Readmitted within 30 days (%)"."""
    if kind in MONEY_KINDS:
        return f"{label} ({currency_symbol()})"
    if kind in ("share", "cumulative"):
        return f"{label} (%)"
    return label
