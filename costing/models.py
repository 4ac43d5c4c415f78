"""Costing: what resources cost (effective-dated rates), budgets, and report runs.

Money is Decimal throughout, stored at full precision and rounded half up to two
places only for display (see ``costing/money.py``).
"""

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


def financial_year_of(day: date) -> int:
    """NHS financial years run April to March; FY 2025/26 is returned as 2025."""
    return day.year if day.month >= 4 else day.year - 1


def financial_year_label(fy: int) -> str:
    return f"{fy}/{str(fy + 1)[-2:]}"


class CostRateQuerySet(models.QuerySet):
    def in_force(self, on: date):
        """Rates in force on a date: the latest financial year not after the date's."""
        return self.filter(financial_year__lte=financial_year_of(on)).order_by("resource_id", "-financial_year")


class CostRate(models.Model):
    """The standard rate of a resource for one financial year (per minute, item or day)."""

    resource = models.ForeignKey("pathways.Resource", on_delete=models.PROTECT, related_name="rates")
    financial_year = models.PositiveSmallIntegerField(help_text="Start year: 2025 means FY 2025/26 (April-March).")
    rate = models.DecimalField(max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    price_year = models.PositiveSmallIntegerField(help_text="The year whose prices the rate is expressed in.")
    source = models.CharField(max_length=300, help_text="Where the figure comes from (e.g. NCC 2023/24 VB09Z).")
    includes = models.CharField(
        max_length=300,
        blank=True,
        help_text="What the rate already includes (e.g. overheads), so nothing is counted twice.",
    )
    # Capacity cost rate provenance (staff and rooms): CCR = capacity cost / practical capacity.
    capacity_cost = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    theoretical_capacity_minutes = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    practical_factor = models.DecimalField(max_digits=4, decimal_places=3, null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = CostRateQuerySet.as_manager()

    class Meta:
        ordering = ["resource__code", "-financial_year"]
        constraints = [
            models.UniqueConstraint(fields=["resource", "financial_year"], name="rate_one_per_resource_year"),
            models.CheckConstraint(name="rate_non_negative", condition=Q(rate__gte=0)),
            models.CheckConstraint(
                name="rate_practical_factor_range",
                condition=Q(practical_factor__isnull=True) | (Q(practical_factor__gt=0) & Q(practical_factor__lte=1)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource.code} FY {financial_year_label(self.financial_year)}: {self.rate} {self.currency}"


class Budget(models.Model):
    """Budgeted episode volume for a pathway in a financial year (entered by finance)."""

    pathway = models.ForeignKey("pathways.Pathway", on_delete=models.PROTECT, related_name="budgets")
    financial_year = models.PositiveSmallIntegerField()
    episodes = models.PositiveIntegerField()
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-financial_year", "pathway__code"]
        constraints = [
            models.UniqueConstraint(fields=["pathway", "financial_year"], name="budget_one_per_pathway_year")
        ]

    def __str__(self) -> str:
        return f"{self.pathway.code} FY {financial_year_label(self.financial_year)}: {self.episodes} episodes"


class ReportRun(models.Model):
    """One computation of a report: the row, not Celery's result backend, is the truth."""

    class Kind(models.TextChoices):
        VARIANCE = "variance", "Variance report"
        COST = "cost", "Cost report"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    parameters = models.JSONField(default=dict)
    # sha256 of kind + canonical parameters: identical requests join a live run.
    parameters_key = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["parameters_key"],
                condition=Q(status__in=["queued", "running"]),
                name="report_one_live_run_per_request",
            ),
            models.CheckConstraint(name="report_progress_0_100", condition=Q(progress__lte=100)),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"
