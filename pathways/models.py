"""Pathways: versioned plans of care made of stages and steps, with planned resources.

Published and retired versions are immutable. The rule is held three times: in
the services (``pathways/services.py``), in the admin (read-only), and in the
database itself (triggers from migration 0002), so that ``QuerySet.update()`` or
raw SQL cannot change a published plan either.

``Resource`` lives here because it is the vocabulary of the plan (what a step
consumes); what a resource *costs* (rates, effective dating) is ``costing``'s.
"""

import math
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.privacy import validate_no_patient_identifiers

code_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{0,39}$",
    "Use capital letters, digits and hyphens, starting with a letter or digit (e.g. HIP-FRACTURE).",
)


class Pathway(models.Model):
    code = models.CharField(max_length=40, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    specialty = models.CharField(max_length=100, blank=True)
    owner_unit = models.ForeignKey("accounts.OrgUnit", on_delete=models.PROTECT, related_name="pathways")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} - {self.name}"


class PathwayVersionQuerySet(models.QuerySet):
    def published(self):
        return self.filter(status=PathwayVersion.Status.PUBLISHED)

    def in_force(self, pathway, on: date):
        """The version an episode of ``pathway`` starting ``on`` follows, or None if none is published.

        The published version, once it has taken effect. Before its "effective from" date
        (published ahead of time, or an episode entered after the fact), the version it
        replaced that was in force then; an episode from before the pathway's first version
        took effect follows that first version.
        """
        return self.in_force_on(pathway)(on)

    def in_force_on(self, pathway) -> Callable[[date], "PathwayVersion | None"]:
        """``in_force`` for many dates (an import of years of stays): the versions read once, each date in Python."""
        versions = list(
            self.filter(pathway=pathway, status__in=[PathwayVersion.Status.PUBLISHED, PathwayVersion.Status.RETIRED])
        )
        current = next((v for v in versions if v.status == PathwayVersion.Status.PUBLISHED), None)
        earlier = sorted(
            (
                v
                for v in versions
                if v.status == PathwayVersion.Status.RETIRED and current and v.number < current.number
            ),
            key=lambda v: v.number,
        )

        def version_on(on: date) -> "PathwayVersion | None":
            if current is None or current.effective_from is None or current.effective_from <= on:
                return current
            then = [v for v in earlier if v.effective_from is None or v.effective_from <= on]
            if then:  # the latest to take effect by then (undated ones last), the highest number first
                return max(then, key=lambda v: (v.effective_from is not None, v.effective_from or date.min, v.number))
            return earlier[0] if earlier else current

        return version_on


class PathwayVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        RETIRED = "retired", "Retired"

    pathway = models.ForeignKey(Pathway, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    change_note = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    effective_from = models.DateField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = PathwayVersionQuerySet.as_manager()

    class Meta:
        ordering = ["pathway", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["pathway", "number"], name="version_unique_number"),
            models.UniqueConstraint(
                fields=["pathway"], condition=Q(status="published"), name="version_one_published_per_pathway"
            ),
            models.CheckConstraint(
                name="version_published_has_publisher",
                condition=Q(status="draft") | Q(published_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pathway.code} v{self.number} ({self.status})"

    @property
    def is_editable(self) -> bool:
        return self.status == self.Status.DRAFT


class Stage(models.Model):
    version = models.ForeignKey(PathwayVersion, on_delete=models.CASCADE, related_name="stages")
    order = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["version", "order", "id"]

    def __str__(self) -> str:
        return self.name


class Step(models.Model):
    class Type(models.TextChoices):
        ASSESSMENT = "assessment", "Assessment"
        INVESTIGATION = "investigation", "Investigation"
        PROCEDURE = "procedure", "Procedure"
        MEDICATION = "medication", "Medication"
        NURSING = "nursing", "Nursing"
        THERAPY = "therapy", "Therapy"
        EDUCATION = "education", "Education"
        STAY = "stay", "Stay (per day)"
        ADMISSION = "admission", "Admission"
        DISCHARGE = "discharge", "Discharge"
        OTHER = "other", "Other"

    version = models.ForeignKey(PathwayVersion, on_delete=models.CASCADE, related_name="steps")
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField(default=0)
    code = models.CharField(max_length=40, validators=[code_validator])
    name = models.CharField(max_length=200)
    step_type = models.CharField(max_length=20, choices=Type.choices, default=Type.OTHER)
    mandatory = models.BooleanField(default=True)
    criticality = models.PositiveSmallIntegerField(
        default=1, help_text="Weight 1 (routine) to 5 (critical); critical omissions need a lead's review."
    )
    evidence = models.CharField(max_length=300, blank=True, help_text="Guideline reference, e.g. NICE QS16 st.4")
    guidance = models.TextField(blank=True)
    # Timing window: due between min and max minutes after the anchor. No anchor step
    # means the episode start. A null bound means no rule on that side.
    anchor = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="anchored_steps")
    window_min_minutes = models.IntegerField(null=True, blank=True)
    window_max_minutes = models.IntegerField(null=True, blank=True)
    must_follow = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="followed_by")
    per_day = models.BooleanField(default=False, help_text="Repeats each day of the stay (e.g. ward stay).")
    # f in E = sum f_s * cost_s: 1; expected days for a per-day step; expected
    # sessions for a repeated step; a probability (0-1) for a conditional step.
    expected_count = models.DecimalField(
        max_digits=8, decimal_places=3, default=Decimal("1"), validators=[MinValueValidator(Decimal("0"))]
    )

    class Meta:
        ordering = ["version", "stage__order", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "code"], name="step_unique_code_per_version"),
            models.CheckConstraint(
                name="step_window_min_le_max",
                condition=Q(window_min_minutes__isnull=True)
                | Q(window_max_minutes__isnull=True)
                | Q(window_min_minutes__lte=F("window_max_minutes")),
            ),
            models.CheckConstraint(name="step_expected_count_non_negative", condition=Q(expected_count__gte=0)),
            models.CheckConstraint(
                name="step_criticality_1_to_5", condition=Q(criticality__gte=1) & Q(criticality__lte=5)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} - {self.name}"

    @property
    def has_window(self) -> bool:
        return self.window_min_minutes is not None or self.window_max_minutes is not None

    @property
    def planned_occurrences(self) -> int:
        """How many times the plan expects the step done: its expected count, whole, and at least once.

        A conditional step (expected count 0.3) done once is as planned; two physiotherapy
        sessions are planned where the count is 2. Events beyond this are repeats beyond
        the plan (not departures: a step is satisfied by its first event), whose use of
        resources is usage variance.
        """
        return max(1, math.ceil(self.expected_count))


class Resource(models.Model):
    class Kind(models.TextChoices):
        STAFF = "staff", "Staff"
        ROOM = "room", "Room"
        EQUIPMENT = "equipment", "Equipment"
        CONSUMABLE = "consumable", "Consumable"
        DRUG = "drug", "Drug"
        BED_DAY = "bed_day", "Bed-day"
        OVERHEAD = "overhead", "Overhead"

    class Unit(models.TextChoices):
        MINUTE = "minute", "minute"
        ITEM = "item", "item"
        DAY = "day", "day"

    code = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    unit = models.CharField(max_length=8, choices=Unit.choices)
    salaried = models.BooleanField(
        default=False, help_text="Salaried staff: extra minutes consume capacity rather than cash."
    )
    description = models.TextField(blank=True)
    # Set by resource_update when what the resource is changes (salaried, unit, kind): cost
    # summaries stored before it, of episodes that used the resource, are stale (costing.summaries),
    # as they are after a rate change. A stored line keeps whether its resource was salaried.
    costing_changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class PlannedResource(models.Model):
    """What one occurrence of a step consumes: quantity (in the resource's unit) x headcount."""

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="planned_resources")
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="planned_uses")
    quantity = models.DecimalField(max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0"))])
    headcount = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["step", "id"]
        constraints = [
            models.UniqueConstraint(fields=["step", "resource"], name="planned_resource_once_per_step"),
            models.CheckConstraint(name="planned_quantity_non_negative", condition=Q(quantity__gte=0)),
            models.CheckConstraint(name="planned_headcount_positive", condition=Q(headcount__gte=1)),
        ]

    def __str__(self) -> str:
        return f"{self.headcount} x {self.quantity} {self.resource.unit} {self.resource.code}"


class PathwayChange(models.Model):
    """Who changed a pathway version, when and why (append-only)."""

    version = models.ForeignKey(PathwayVersion, on_delete=models.PROTECT, related_name="changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=40)
    note = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.version} {self.action} by {self.actor} at {self.at:%Y-%m-%d %H:%M}"
