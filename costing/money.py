"""Money for display. Arithmetic stays at full Decimal precision everywhere else.

NHS finance rounds half up (4,167.125 shows as 4,167.13), not Python's default
banker's rounding, so ``display`` quantizes explicitly.
"""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def round_money(amount: Decimal) -> Decimal:
    """Round half up to two places: for display and for figures handed to people, never for storage."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def display(amount: Decimal | None) -> str:
    """``Decimal("4167.125")`` -> ``"4,167.13"``; ``None`` -> ``""``."""
    if amount is None:
        return ""
    return f"{round_money(amount):,.2f}"
