"""Effective-dated cost rates and the capacity cost rate (CCR) calculator.

A rate belongs to a financial year (NHS, April-March). An activity on a date is
costed with the rate of the latest financial year not after the date's year: a
rate set for FY 2024/25 stays in force in 2025/26 until a 2025/26 rate exists.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from pathways.models import Resource

from .models import CostRate, financial_year_label, financial_year_of

RATE_PLACES = Decimal("0.000001")  # CostRate.rate has 6 decimal places
DEFAULT_PRACTICAL_FACTOR = Decimal("0.85")


def rates_in_force(resource_ids: Iterable[int], on: date) -> dict[int, CostRate]:
    """``{resource_id: CostRate}`` in force on ``on``, in one query; resources without a rate are absent."""
    ids = set(resource_ids)
    if not ids:
        return {}
    found: dict[int, CostRate] = {}
    for rate in CostRate.objects.filter(resource_id__in=ids).in_force(on):
        # ordered by resource, newest year first: the first row per resource wins
        found.setdefault(rate.resource_id, rate)
    return found


def rate_in_force(resource_id: int, on: date) -> CostRate | None:
    return rates_in_force([resource_id], on).get(resource_id)


@dataclass(frozen=True)
class CapacityCostRate:
    """CCR = cost of capacity supplied / practical capacity, with the working shown.

    ``practical_minutes`` = theoretical minutes x practical factor (typically
    0.80-0.85: breaks, training, handover). Never actual volume: costing on what
    was used would hide idle capacity inside the rate.
    """

    capacity_cost: Decimal
    theoretical_minutes: Decimal
    practical_factor: Decimal
    practical_minutes: Decimal
    rate: Decimal  # per minute, 6 decimal places (the precision CostRate stores)


def capacity_cost_rate(
    *, capacity_cost: Decimal, theoretical_minutes: Decimal, practical_factor: Decimal = DEFAULT_PRACTICAL_FACTOR
) -> CapacityCostRate:
    capacity_cost = Decimal(capacity_cost)
    theoretical_minutes = Decimal(theoretical_minutes)
    practical_factor = Decimal(practical_factor)
    errors = {}
    if capacity_cost < 0:
        errors["capacity_cost"] = "The cost of capacity cannot be negative."
    if theoretical_minutes <= 0:
        errors["theoretical_minutes"] = "Theoretical capacity must be more than zero minutes."
    if not (Decimal("0") < practical_factor <= Decimal("1")):
        errors["practical_factor"] = "The practical factor is a fraction above 0 and at most 1 (e.g. 0.85)."
    if errors:
        raise ValidationError(errors)
    practical_minutes = theoretical_minutes * practical_factor
    rate = (capacity_cost / practical_minutes).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)
    return CapacityCostRate(
        capacity_cost=capacity_cost,
        theoretical_minutes=theoretical_minutes,
        practical_factor=practical_factor,
        practical_minutes=practical_minutes,
        rate=rate,
    )


def _fixed(value, places: str) -> str | None:
    """A decimal as the database stores it, so 1.875 and 1.875000 compare equal."""
    return None if value is None else str(Decimal(value).quantize(Decimal(places)))


def _rate_snapshot(rate: CostRate) -> dict:
    return {
        "resource": rate.resource.code,
        "financial_year": financial_year_label(rate.financial_year),
        "rate": _fixed(rate.rate, "0.000001"),
        "currency": rate.currency,
        "price_year": rate.price_year,
        "source": rate.source,
        "includes": rate.includes,
        "capacity_cost": _fixed(rate.capacity_cost, "0.01"),
        "theoretical_capacity_minutes": _fixed(rate.theoretical_capacity_minutes, "0.01"),
        "practical_factor": _fixed(rate.practical_factor, "0.001"),
    }


@transaction.atomic
def cost_rate_set(
    *,
    resource: Resource,
    financial_year: int,
    rate: Decimal | None = None,
    price_year: int | None = None,
    source: str,
    includes: str = "",
    currency: str | None = None,
    ccr: CapacityCostRate | None = None,
    actor=None,
    reason: str = "",
) -> tuple[CostRate, str]:
    """Create or replace the rate of ``resource`` for ``financial_year``.

    Returns ``(rate, outcome)`` with outcome ``"created"``, ``"updated"`` or
    ``"unchanged"`` (same figures again: nothing written, nothing audited, so
    re-importing a file is idempotent).

    With ``ccr`` the rate is the calculator's and its working (capacity cost,
    theoretical minutes, practical factor) is stored beside it. Without, a new
    figure clears any earlier working, since it no longer explains it; the same
    figure again (a corrected source note) keeps it, since it still does.
    """
    existing = CostRate.objects.select_for_update().filter(resource=resource, financial_year=financial_year).first()
    before = _rate_snapshot(existing) if existing else None
    obj = existing or CostRate(resource=resource, financial_year=financial_year)
    if ccr is not None:
        rate = ccr.rate
    if rate is None:
        raise ValidationError({"rate": "Give a rate, or work one out with the capacity cost rate calculator."})
    rate = Decimal(rate)
    keep_working = ccr is None and existing is not None and existing.capacity_cost is not None and rate == existing.rate
    obj.rate = rate
    obj.price_year = price_year if price_year is not None else financial_year
    obj.source = source
    obj.includes = includes
    if currency or existing is None:
        # Refused by ``CostRate.clean`` unless it is settings.CURRENCY: costs add rates together.
        obj.currency = currency or settings.CURRENCY
    if not keep_working:
        obj.capacity_cost = ccr.capacity_cost if ccr else None
        obj.theoretical_capacity_minutes = ccr.theoretical_minutes if ccr else None
        obj.practical_factor = ccr.practical_factor if ccr else None
    obj.updated_at = timezone.now()
    obj.updated_by = actor
    obj.full_clean(validate_unique=existing is None)
    after = _rate_snapshot(obj)
    if before is not None and before == after:
        return existing, "unchanged"
    obj.save()
    audit_record(
        action="cost_rate.create" if existing is None else "cost_rate.update",
        actor=actor,
        obj=obj,
        detail={"before": before, "after": after, "reason": reason},
    )
    return obj, "created" if existing is None else "updated"


@transaction.atomic
def cost_rate_delete(*, rate: CostRate, actor=None, reason: str = "") -> None:
    snapshot = _rate_snapshot(rate)
    pk, resource_id = rate.pk, rate.resource_id
    rate.delete()
    # No rate row is left to say that something changed: the resource says it instead, so
    # the stored summaries that priced it are recomputed (costing.summaries.stale).
    Resource.objects.filter(pk=resource_id).update(costing_changed_at=timezone.now())
    audit_record(
        action="cost_rate.delete",
        actor=actor,
        object_type="costing.costrate",
        object_id=str(pk),
        detail={"before": snapshot, "reason": reason},
    )


@dataclass(frozen=True)
class CostingChange:
    what: str  # "The Theatre (room and kit) rate for FY 2025/26"
    at: object  # datetime
    by: str = ""


def costing_changed_since(moment) -> CostingChange | None:
    """The latest change to what costs are priced with (a rate, or a resource) after ``moment``.

    A report run computed before it shows figures at the rates of its day; the report
    pages say so, since nothing may be silently out of date either.
    """
    if moment is None:
        return None
    rate = CostRate.objects.filter(updated_at__gt=moment).select_related("resource", "updated_by")
    rate = rate.order_by("-updated_at").first()
    resource = Resource.objects.filter(costing_changed_at__gt=moment).order_by("-costing_changed_at").first()
    if rate is not None and (resource is None or rate.updated_at >= resource.costing_changed_at):
        return CostingChange(
            what=f"The {rate.resource.name} rate for FY {financial_year_label(rate.financial_year)}",
            at=rate.updated_at,
            by=str(rate.updated_by) if rate.updated_by else "",
        )
    if resource is not None:
        return CostingChange(
            what=f"How {resource.name} is costed (a rate removed, or its unit, kind or salaried flag)",
            at=resource.costing_changed_at,
        )
    return None


def financial_year_choices(around: date | None = None, *, back: int = 3, ahead: int = 2) -> list[tuple[int, str]]:
    current = financial_year_of(around or timezone.localdate())
    return [(fy, f"FY {financial_year_label(fy)}") for fy in range(current + ahead, current - back - 1, -1)]
