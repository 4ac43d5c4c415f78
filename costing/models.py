"""Costing: what resources cost (effective-dated rates), budgets, and report runs.

Money is Decimal throughout, stored at full precision and rounded half up to two
places only for display (see ``costing/money.py``).
"""

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


def financial_year_of(day: date) -> int:
    """NHS financial years run April to March; FY 2025/26 is returned as 2025."""
    return day.year if day.month >= 4 else day.year - 1


def financial_year_label(fy: int) -> str:
    return f"{fy}/{str(fy + 1)[-2:]}"


def foreign_currency_message(currency: str) -> str:
    """Why a rate in another currency is refused: costing adds rates together, in one currency."""
    return (
        f"Rates are in {settings.CURRENCY}, the currency CommonPath costs in (the CURRENCY setting): "
        f"costs add rates together, so a rate in {currency or 'no currency'} would be counted as "
        f"{settings.CURRENCY}. Convert the figure to {settings.CURRENCY} and give it in {settings.CURRENCY}."
    )


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

    def clean(self):
        super().clean()
        # Engine, standard cost and reports add rates without converting: one currency only.
        if self.currency != settings.CURRENCY:
            raise ValidationError({"currency": foreign_currency_message(self.currency)})


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
    # The org unit the report covers (also in ``parameters``): dashboards find the
    # latest run for a unit with one indexed query, and access is checked against it.
    org_unit = models.ForeignKey(
        "accounts.OrgUnit", null=True, blank=True, on_delete=models.PROTECT, related_name="report_runs"
    )
    # Bumped with every progress update of the attempt that holds the run. A running
    # run whose heartbeat is older than REPORT_RUN_LEASE_SECONDS lost its worker and
    # may be reclaimed (see costing/tasks.py).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

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
        indexes = [
            models.Index(fields=["org_unit", "kind", "status", "-finished_at"], name="report_unit_kind_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"


class EpisodeCost(models.Model):
    """The cost of one closed episode, as the cost engine computed it: what reports aggregate.

    Derived data, refreshed incrementally (``costing/summaries.py``): a summary is
    stale when its episode changed after it was computed (``Episode.updated_at``,
    bumped by every event, variance and outcome write) or when a rate changed. The
    grouping dimensions (pathway, unit, clinician, month) are copied here so that a
    report is one aggregate over one table, whatever the number of episodes.
    """

    class Cause(models.TextChoices):
        PATIENT = "patient", "Patient"
        CLINICIAN = "clinician", "Clinician / staff"
        SYSTEM = "system", "System"
        COMMUNITY = "community", "Community"
        # A step done more often than planned, with no record to explain it: DOMAIN.md section 3
        # records repeats but does not count them as departures, so no one is asked for a reason.
        # Said apart from "No cause recorded", which is departures still waiting for one.
        REPEAT = "repeat", "Repeated steps"
        # Cost that no variance record explains, or whose record has no cause yet. Not "Unexplained":
        # that is a variance's status (waiting for a reason), and managers read both on one page.
        UNEXPLAINED = "unexplained", "No cause recorded"

    episode = models.OneToOneField(
        "variances.Episode", primary_key=True, on_delete=models.CASCADE, related_name="cost_summary"
    )
    # pathway and org_unit lead the indexes below, which serve their lookups: a
    # full recomputation writes every summary, so each index costs there.
    pathway = models.ForeignKey("pathways.Pathway", on_delete=models.CASCADE, related_name="+", db_index=False)
    version = models.ForeignKey("pathways.PathwayVersion", on_delete=models.CASCADE, related_name="+")
    org_unit = models.ForeignKey("accounts.OrgUnit", on_delete=models.CASCADE, related_name="+", db_index=False)
    responsible_clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10)
    started_on = models.DateField()
    month = models.DateField(help_text="First day of the month the episode started in (local time).")
    ended_on = models.DateField()
    los_days = models.PositiveIntegerField()
    expected_los_days = models.DecimalField(max_digits=8, decimal_places=3)
    readmitted_30d = models.BooleanField(null=True, blank=True)
    complication = models.BooleanField(null=True, blank=True)
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    # Money at full precision: rate (6 dp) x quantity (3 dp) x expected count (3 dp)
    # needs 12 places to stay exact; rounding is for display only (costing/money.py).
    expected = models.DecimalField(max_digits=24, decimal_places=12)
    actual = models.DecimalField(max_digits=24, decimal_places=12)
    price_variance = models.DecimalField(max_digits=24, decimal_places=12)
    usage_variance = models.DecimalField(max_digits=24, decimal_places=12)
    los_variance = models.DecimalField(max_digits=24, decimal_places=12)
    # The part of usage and length-of-stay variance on salaried staff: capacity
    # consumed, not cash.
    capacity_variance = models.DecimalField(max_digits=24, decimal_places=12)
    # Total variance by the cause of the variance record that explains each line.
    patient_variance = models.DecimalField(max_digits=24, decimal_places=12)
    clinician_variance = models.DecimalField(max_digits=24, decimal_places=12)
    system_variance = models.DecimalField(max_digits=24, decimal_places=12)
    community_variance = models.DecimalField(max_digits=24, decimal_places=12)
    unexplained_variance = models.DecimalField(max_digits=24, decimal_places=12)
    repeat_variance = models.DecimalField(max_digits=24, decimal_places=12, db_default=Decimal(0))
    missing_rates = models.PositiveSmallIntegerField(
        default=0, help_text="Resources costed at zero because no rate was in force on the date."
    )
    source_updated_at = models.DateTimeField(help_text="The episode's updated_at when this was computed.")
    computed_at = models.DateTimeField(default=timezone.now)
    # The costing rules it was computed under (costing.engine.RULES_VERSION): a summary from
    # earlier rules is stale. Rows written without it (before the column existed, or by a worker still
    # on older code during an upgrade) take the database default, 1.
    rules_version = models.PositiveSmallIntegerField(db_default=1)

    class Meta:
        indexes = [
            models.Index(fields=["pathway", "started_on"], name="episode_cost_pathway_idx"),
            models.Index(fields=["org_unit", "started_on"], name="episode_cost_unit_idx"),
            models.Index(fields=["started_on"], name="episode_cost_started_idx"),
        ]

    def __str__(self) -> str:
        return f"cost of episode {self.episode_id}: {self.actual} vs {self.expected}"

    @property
    def total_variance(self):
        return self.actual - self.expected


def _derived_link(to: str, *, db_index: bool = False, **options) -> models.ForeignKey:
    """A cost line's link to what it was computed from, without a per-row database check.

    The engine writes only ids of rows that are never deleted (events, variances,
    resources, and the steps of published versions, which are frozen), and a full
    recomputation writes about ten lines per episode, where each reference check
    and index costs (bench/reports.py). Deletion still follows ``on_delete`` in the ORM.
    """
    return models.ForeignKey(to, related_name="+", db_index=db_index, db_constraint=False, **options)


class EpisodeCostLine(models.Model):
    """One step x resource of an episode's cost: standard against actual, decomposed.

    ``variance`` is the record that explains the line (or null: unexplained);
    ``cause`` is copied from it so that "cost of system-caused variance" is a
    single aggregate.
    """

    # A full recomputation writes about ten lines per episode, so every index here
    # costs: step is served by (step, resource), and event and variance, null on
    # most lines, by partial indexes over the lines that have one.
    episode_cost = models.ForeignKey(EpisodeCost, on_delete=models.CASCADE, related_name="lines")
    step = _derived_link("pathways.Step", null=True, blank=True, on_delete=models.CASCADE)
    # For an activity not on the pathway (an addition): the event that recorded it.
    event = _derived_link("variances.StepEvent", null=True, blank=True, on_delete=models.CASCADE)
    resource = _derived_link("pathways.Resource", on_delete=models.CASCADE, db_index=True)
    salaried = models.BooleanField(default=False)
    standard_quantity = models.DecimalField(max_digits=18, decimal_places=6)
    actual_quantity = models.DecimalField(max_digits=18, decimal_places=6)
    standard_rate = models.DecimalField(max_digits=14, decimal_places=6)
    standard_cost = models.DecimalField(max_digits=24, decimal_places=12)
    actual_cost = models.DecimalField(max_digits=24, decimal_places=12)
    price_variance = models.DecimalField(max_digits=24, decimal_places=12)
    usage_variance = models.DecimalField(max_digits=24, decimal_places=12)
    los_variance = models.DecimalField(max_digits=24, decimal_places=12)
    variance = _derived_link("variances.Variance", null=True, blank=True, on_delete=models.SET_NULL)
    cause = models.CharField(max_length=12, choices=EpisodeCost.Cause.choices, blank=True)

    class Meta:
        ordering = ["episode_cost", "id"]
        indexes = [
            models.Index(fields=["step", "resource"], name="cost_line_step_resource_idx"),
            models.Index(fields=["variance"], name="cost_line_variance_idx", condition=Q(variance__isnull=False)),
            models.Index(fields=["event"], name="cost_line_event_idx", condition=Q(event__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"episode {self.episode_cost_id} {self.resource_id}: {self.actual_cost} vs {self.standard_cost}"
