"""Episodes, what happened in them (step events) and their departures (variances).

Nothing here is hard-deleted. A variance is amended through ``VarianceRevision``
rows that the database refuses to UPDATE or DELETE (migration 0002); a variance
is withdrawn with a reason, never removed.
"""

import re
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, OuterRef, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.privacy import NHS_NUMBER, validate_no_patient_identifiers

# --- Patient reference -------------------------------------------------------------

PATIENT_REF_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,39}$")
# Any ten digits, check digit or not: a reference has no business looking like an NHS number.
_NHS_NUMBER_RE = re.compile(rf"^{NHS_NUMBER}$")


def validate_patient_ref(value: str) -> None:
    """A pseudonymous reference only: never a name, an email or an NHS number."""
    raw = value.strip()
    if "@" in raw:
        raise ValidationError("This looks like an email address. Use the pseudonymous reference, not contact details.")
    if _NHS_NUMBER_RE.match(raw):
        raise ValidationError("This looks like a 10-digit NHS number. CommonPath stores pseudonymous references only.")
    if re.search(r"[a-z]", raw) and re.search(r"\s", raw):
        raise ValidationError("This looks like a person's name. Use the pseudonymous reference (e.g. PT-7F3K2Q).")
    if not PATIENT_REF_RE.match(raw):
        raise ValidationError(
            "Use 4-40 capital letters, digits and hyphens (e.g. PT-7F3K2Q); names and free text are not allowed."
        )
    if raw.isalpha():
        raise ValidationError("A reference needs at least one digit, so a surname cannot pass as a reference.")


# An episode's ``updated_at`` only ever moves forward. Report summaries count as stale when
# computed from an earlier ``updated_at`` (costing/summaries.py): a change stamped at or before
# the last one (a clock stepped back, another server's clock, an import stamped with its start
# while the episode changed meanwhile) would leave the old figures standing.
_TICK = timedelta(microseconds=1)


def next_updated_at(previous: datetime, now: datetime) -> datetime:
    """The ``updated_at`` of a change made ``now`` to an episode last changed at ``previous``."""
    return max(now, previous + _TICK)


def next_updated_at_expression(now: datetime) -> Greatest:
    """``next_updated_at`` in SQL, for ``QuerySet.update`` on many episodes at once."""
    return Greatest(
        Value(now, output_field=DateTimeField()),
        ExpressionWrapper(F("updated_at") + _TICK, output_field=DateTimeField()),
    )


class EpisodeQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=Episode.Status.ACTIVE)

    def for_units(self, unit_ids):
        return self.filter(org_unit_id__in=unit_ids)

    def for_pathway(self, code: str):
        return self.filter(version__pathway__code=code)


class Episode(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        EXITED = "exited", "Exited pathway"

    class DischargeDestination(models.TextChoices):
        """Where a completed episode's patient went: the codes the browser offers and the API takes."""

        USUAL_RESIDENCE = "usual-residence", "Usual place of residence"
        CARE_HOME = "care-home", "Care home"
        REHABILITATION = "rehabilitation", "Rehabilitation unit"
        OTHER_HOSPITAL = "other-hospital", "Transfer to another hospital"
        HOSPICE = "hospice", "Hospice"
        DIED = "died", "Died in hospital"
        OTHER = "other", "Other"

    patient_ref = models.CharField(max_length=40, validators=[validate_patient_ref], db_index=True)
    version = models.ForeignKey("pathways.PathwayVersion", on_delete=models.PROTECT, related_name="episodes")
    org_unit = models.ForeignKey("accounts.OrgUnit", on_delete=models.PROTECT, related_name="episodes")
    responsible_clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="episodes"
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    exit_reason = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    # Coded (DischargeDestination) by the forms and the API; not declared as the field's choices, so that
    # what earlier versions stored as free text stays valid and is shown as it was.
    discharge_destination = models.CharField(max_length=60, blank=True)
    readmitted_30d = models.BooleanField(null=True, blank=True)
    complication = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Bumped on every change to the episode or its events/variances: drives ETags
    # and the incremental refresh of report summaries.
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    row_version = models.PositiveIntegerField(default=1)

    objects = EpisodeQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="episode_ends_after_start",
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
            ),
            models.CheckConstraint(
                name="episode_closed_has_end",
                condition=Q(status="active") | Q(ended_at__isnull=False),
            ),
            models.CheckConstraint(
                name="episode_exit_has_reason",
                condition=~Q(status="exited") | ~Q(exit_reason=""),
            ),
        ]
        indexes = [
            models.Index(fields=["org_unit", "status"], name="episode_unit_status_idx"),
            models.Index(fields=["responsible_clinician", "status"], name="episode_clinician_status_idx"),
            models.Index(fields=["version", "started_at"], name="episode_version_started_idx"),
            # Episode lists, newest first, by status (bench/pages.py).
            models.Index(fields=["status", "-started_at", "-id"], name="episode_status_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_ref} on {self.version}"

    @property
    def length_of_stay_days(self) -> int | None:
        """Nights in hospital: calendar days between start and end (local time)."""
        if self.ended_at is None:
            return None
        start = timezone.localtime(self.started_at).date()
        end = timezone.localtime(self.ended_at).date()
        return (end - start).days


class StepEvent(models.Model):
    """Something that happened: a pathway step done, or an activity not on the pathway."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Manual"
        API = "api", "API"
        IMPORT = "import", "Import"

    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="events")
    step = models.ForeignKey("pathways.Step", null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    activity = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_no_patient_identifiers],
        help_text="For an activity not on the pathway.",
    )
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    performed_by = models.CharField(max_length=150, blank=True, validators=[validate_no_patient_identifiers])
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    external_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            # An import's ids are the file's own (source, case, activity, time): the same file
            # imported by anyone is the same events. An API client's ids are its system's own,
            # so they are unique per sending account: two feeds may use the same case numbers.
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id="") & ~Q(source="api"),
                name="event_unique_external_id",
            ),
            models.UniqueConstraint(
                fields=["recorded_by", "external_id"],
                condition=~Q(external_id="") & Q(source="api"),
                name="event_unique_api_external_id",
            ),
            models.CheckConstraint(name="event_step_or_activity", condition=Q(step__isnull=False) | ~Q(activity="")),
        ]
        indexes = [models.Index(fields=["episode", "occurred_at"], name="event_episode_time_idx")]

    def __str__(self) -> str:
        return f"{self.step.code if self.step_id else self.activity} at {self.occurred_at:%Y-%m-%d %H:%M}"


class EventQuantity(models.Model):
    """An actual resource quantity for an event, where it differed from the plan.

    ``unit_cost`` only where the actual price differs from the standard rate (a
    dearer implant): that is what makes a price variance.
    """

    event = models.ForeignKey(StepEvent, on_delete=models.PROTECT, related_name="quantities")
    resource = models.ForeignKey("pathways.Resource", on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(max_digits=12, decimal_places=3)
    headcount = models.PositiveSmallIntegerField(default=1)
    unit_cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "resource"], name="event_quantity_once_per_resource"),
            models.CheckConstraint(name="event_quantity_non_negative", condition=Q(quantity__gte=0)),
            models.CheckConstraint(
                name="event_unit_cost_non_negative", condition=Q(unit_cost__isnull=True) | Q(unit_cost__gte=0)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.headcount} x {self.quantity} of resource {self.resource_id}"

    def describe(self) -> str:
        """What the episode page shows: "Theatre nurse 2 × 120 min", "Knee implant 1 at £2,200.00 each"."""
        unit = {"minute": " min", "day": " day" if self.quantity == 1 else " days"}.get(self.resource.unit, "")
        text = (
            f"{self.resource.name} {f'{self.headcount} × ' if self.headcount > 1 else ''}{plain(self.quantity)}{unit}"
        )
        if self.unit_cost is not None:
            # Shown to the penny, rounded half up (stored in full).
            price = self.unit_cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            text += f" at {currency_symbol()}{price:,.2f} each"
        return text


def plain(number: Decimal) -> str:
    """120.000 as 120, 1.500 as 1.5: a quantity as it was typed."""
    return f"{number.normalize():f}"


def currency_symbol() -> str:
    return {"GBP": "£", "EUR": "€", "USD": "$"}.get(settings.CURRENCY, f"{settings.CURRENCY} ")


class ReasonCodeQuerySet(models.QuerySet):
    def usable(self, pathway=None):
        qs = self.filter(retired=False)
        if pathway is None:
            return qs.filter(pathway__isnull=True)
        return qs.filter(Q(pathway__isnull=True) | Q(pathway=pathway))


class ReasonCode(models.Model):
    """A coded reason for departing from a pathway.

    Base codes follow the HL7 CDS Hooks / CPG non-adherence reasons; local codes
    belong to one pathway. Codes are retired, never deleted.
    """

    code = models.CharField(max_length=60)
    display = models.CharField(max_length=200)
    category = models.CharField(max_length=60, blank=True)
    system = models.CharField(max_length=200, blank=True)
    pathway = models.ForeignKey(
        "pathways.Pathway", null=True, blank=True, on_delete=models.PROTECT, related_name="local_reasons"
    )
    default_cause = models.CharField(max_length=12, blank=True)
    discouraged = models.BooleanField(
        default=False, help_text="Allowed, but flagged: say more in the rationale (e.g. 'patient refused' alone)."
    )
    retired = models.BooleanField(default=False)

    objects = ReasonCodeQuerySet.as_manager()

    class Meta:
        ordering = ["category", "display"]
        constraints = [
            models.UniqueConstraint(fields=["code"], condition=Q(pathway__isnull=True), name="reason_unique_base_code"),
            models.UniqueConstraint(fields=["pathway", "code"], name="reason_unique_local_code"),
        ]

    def __str__(self) -> str:
        return self.display


class Detection(models.Model):
    """What the detector found: immutable; documenting the variance never deletes it."""

    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="detections")
    step = models.ForeignKey("pathways.Step", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey(StepEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    variance_type = models.CharField(max_length=12)
    # Stable identity of a finding within an episode ("delay:IV-ANTIBIOTICS",
    # "addition:<event id>"): the unique key that makes detection idempotent.
    key = models.CharField(max_length=120)
    detected_at = models.DateTimeField(default=timezone.now)
    due_from = models.DateTimeField(null=True, blank=True)
    due_by = models.DateTimeField(null=True, blank=True)
    happened_at = models.DateTimeField(null=True, blank=True)
    minutes_outside = models.IntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["episode", "key"], name="detection_unique_key_per_episode")]

    def __str__(self) -> str:
        return f"{self.key} in episode {self.episode_id}"


# Omitting a step at least this critical needs a clinical lead's review.
CRITICAL_STEP_CRITICALITY = 4


class VarianceQuerySet(models.QuerySet):
    def unexplained(self):
        return self.filter(status=Variance.Status.UNEXPLAINED)

    def current(self):
        return self.exclude(status=Variance.Status.WITHDRAWN)

    def for_units(self, unit_ids):
        return self.filter(episode__org_unit_id__in=unit_ids)

    def for_clinician(self, user):
        return self.filter(episode__responsible_clinician=user)

    def awaiting_review(self):
        """Documented but not yet adjudicated: what a clinical lead's queue holds."""
        return self.filter(status=Variance.Status.DOCUMENTED)

    def documented_by(self, user):
        """Variances whose current revision ``user`` wrote: as they stand, they are that person's documentation.

        The revision numbered as the variance's ``revision`` put it in its present state; while it
        awaits review, that was recording it, explaining it (a detected one) or amending it.
        """
        return self.filter(self._current_revision_by(user))

    def not_documented_by(self, user):
        return self.filter(~self._current_revision_by(user))

    @staticmethod
    def _current_revision_by(user) -> Exists:
        return Exists(
            VarianceRevision.objects.filter(variance=OuterRef("pk"), number=OuterRef("revision"), changed_by=user)
        )


class Variance(models.Model):
    """A departure from the pathway, on separate coded axes (DOMAIN.md section 3)."""

    class Type(models.TextChoices):
        OMISSION = "omission", "Omission"
        DELAY = "delay", "Delay"
        EARLY = "early", "Early"
        ADDITION = "addition", "Addition"
        SUBSTITUTION = "substitution", "Substitution"
        SEQUENCE = "sequence", "Sequence"
        EXIT = "exit", "Exit"
        OVERRIDE = "override", "Override"

    class Cause(models.TextChoices):
        PATIENT = "patient", "Patient"
        CLINICIAN = "clinician", "Clinician / staff"
        SYSTEM = "system", "System"
        COMMUNITY = "community", "Community"

    class Valence(models.TextChoices):
        POSITIVE = "positive", "Positive"
        NEGATIVE = "negative", "Negative"
        NEUTRAL = "neutral", "Neutral"

    class Level(models.TextChoices):
        PROCESS = "process", "Process"
        OUTCOME = "outcome", "Outcome"

    class Status(models.TextChoices):
        UNEXPLAINED = "unexplained", "Unexplained"
        DOCUMENTED = "documented", "Documented"
        REVIEWED = "reviewed", "Reviewed"
        WITHDRAWN = "withdrawn", "Withdrawn"

    episode = models.ForeignKey(Episode, on_delete=models.PROTECT, related_name="variances")
    step = models.ForeignKey("pathways.Step", null=True, blank=True, on_delete=models.PROTECT, related_name="variances")
    # The resource a variance concerns, where it is about one (a dearer implant):
    # lets the cost engine link a cost line to the variance that explains it.
    resource = models.ForeignKey("pathways.Resource", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    variance_type = models.CharField(max_length=12, choices=Type.choices)
    cause = models.CharField(max_length=12, choices=Cause.choices, blank=True)
    reason = models.ForeignKey(ReasonCode, null=True, blank=True, on_delete=models.PROTECT, related_name="variances")
    valence = models.CharField(max_length=10, choices=Valence.choices, blank=True)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.PROCESS)
    justified = models.BooleanField(null=True, blank=True)
    avoidable = models.BooleanField(null=True, blank=True)
    # Free text that reports and the API show: screened for patient identifiers (accounts.privacy).
    rationale = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    action_taken = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="recorded_variances"
    )
    documented_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DOCUMENTED)
    detection = models.OneToOneField(
        Detection, null=True, blank=True, on_delete=models.PROTECT, related_name="variance"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="reviewed_variances"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    withdrawn_reason = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    # Exits and omissions of critical steps (criticality >= 4) must be adjudicated
    # by a clinical lead; set once, when the variance is created.
    review_required = models.BooleanField(default=False)
    revision = models.PositiveIntegerField(default=1)

    objects = VarianceQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="variance_documented_has_reason",
                condition=Q(status__in=["unexplained", "withdrawn"]) | Q(reason__isnull=False),
            ),
            models.CheckConstraint(
                name="variance_withdrawn_has_reason", condition=~Q(status="withdrawn") | ~Q(withdrawn_reason="")
            ),
        ]
        indexes = [
            models.Index(fields=["status", "episode"], name="variance_status_episode_idx"),
            models.Index(fields=["episode", "step"], name="variance_episode_step_idx"),
            # The review queue, in its order, over the documented variances only (bench/pages.py).
            models.Index(
                F("review_required").desc(),
                "documented_at",
                "id",
                condition=Q(status="documented"),
                name="variance_review_queue_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_variance_type_display()} {self.step.code if self.step_id else ''} ({self.status})"

    @property
    def subject(self) -> str:
        """What the departure is about: the step, or the unplanned activity that was detected.

        Select ``step`` and ``detection__event`` with the variance to keep lists N+1-free.
        """
        if self.step_id:
            return self.step.name
        if self.detection_id and self.detection.event_id:
            return self.detection.event.activity
        if self.variance_type == self.Type.EXIT:
            return "Left the pathway"
        return self.get_variance_type_display()


def with_article(noun: str) -> str:
    """ "an omission", "a delay": the indefinite article chosen by the first letter.

    Vowel letters take "an"; enough for the fixed vocabulary of variance types
    and steps (it does not know "an hour" or "a unit").
    """
    noun = noun.strip()
    return f"{'an' if noun[:1].lower() in 'aeiou' and noun else 'a'} {noun}"


# How each type reads after "with", e.g. "Episodes with an early step".
TYPE_PHRASES = {
    Variance.Type.OMISSION: "an omission",
    Variance.Type.DELAY: "a delay",
    Variance.Type.EARLY: "an early step",
    Variance.Type.ADDITION: "an addition",
    Variance.Type.SUBSTITUTION: "a substitution",
    Variance.Type.SEQUENCE: "a step out of sequence",
    Variance.Type.EXIT: "an exit from the pathway",
    Variance.Type.OVERRIDE: "an override",
}


def variance_type_phrase(value: str) -> str:
    """ "early" -> "an early step": a variance type as a noun phrase with its article."""
    if value in TYPE_PHRASES:
        return TYPE_PHRASES[value]
    return with_article(dict(Variance.Type.choices).get(value, value).lower())


class VarianceRevision(models.Model):
    """One state of a variance, as it was after each change. Append-only in the database."""

    variance = models.ForeignKey(Variance, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField()
    # Indexed by revision_author_idx, which leads with it.
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    changed_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True, validators=[validate_no_patient_identifiers])
    snapshot = models.JSONField()

    class Meta:
        ordering = ["variance", "number"]
        constraints = [
            models.UniqueConstraint(fields=["variance", "number"], name="revision_unique_number"),
        ]
        indexes = [
            # "Did this person write the variance's current revision?" for every variance in a
            # lead's review queue (VarianceQuerySet.not_documented_by), read from the index alone.
            models.Index(fields=["changed_by", "variance", "number"], name="revision_author_idx"),
        ]

    def __str__(self) -> str:
        return f"variance {self.variance_id} rev {self.number}"


class ImportJob(models.Model):
    """One import of an event log started from the browser (run by the task ``variances.import_events``).

    The row, not Celery's result backend, is the truth: status, progress and the
    summary live here. The uploaded file is deleted as soon as the import has
    run, since an event log may carry details about patients (ages, diagnoses)
    that CommonPath must not keep; its name and SHA-256 stay in the summary.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    pathway = models.ForeignKey("pathways.Pathway", on_delete=models.PROTECT, related_name="import_jobs")
    org_unit = models.ForeignKey("accounts.OrgUnit", on_delete=models.PROTECT, related_name="import_jobs")
    mapping_name = models.CharField(max_length=200)
    mapping = models.JSONField(help_text="The mapping document used, so that the job can be repeated exactly.")
    upload = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    closed = models.BooleanField(default=False)
    dry_run = models.BooleanField(default=False)
    skip_bad = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    summary = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(name="import_progress_0_100", condition=Q(progress__lte=100)),
            models.CheckConstraint(name="import_failed_has_error", condition=~Q(status="failed") | ~Q(error="")),
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk} of {self.file_name} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
