import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone


class User(AbstractUser):
    """A person, or a service account acting for an integrating hospital system."""

    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        SERVICE = "service", "Service account"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PERSON)
    display_name = models.CharField(max_length=150, blank=True)

    @property
    def is_service_account(self) -> bool:
        return self.kind == self.Kind.SERVICE

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username


class OrgUnitQuerySet(models.QuerySet):
    def subtree_of(self, units):
        """Units inside any of ``units`` (each unit included)."""
        q = Q(pk__in=[])
        for unit in units:
            q |= Q(path__startswith=unit.path)
        return self.filter(q)


class OrgUnit(models.Model):
    """One node of the trust's tree: trust > division > specialty > ward/team.

    ``path`` is a materialised path of codes ("RCP/SURG/ORTHO/") so that a whole
    subtree is one indexed ``startswith`` query.
    """

    class Kind(models.TextChoices):
        TRUST = "trust", "Trust"
        DIVISION = "division", "Division / directorate"
        SPECIALTY = "specialty", "Specialty"
        WARD = "ward", "Ward"
        TEAM = "team", "Team"

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    path = models.CharField(max_length=500, unique=True, editable=False)

    objects = OrgUnitQuerySet.as_manager()

    class Meta:
        ordering = ["path"]
        constraints = [
            models.CheckConstraint(
                name="orgunit_only_trust_is_root",
                condition=Q(parent__isnull=True, kind="trust") | Q(parent__isnull=False),
            ),
        ]
        indexes = [models.Index(fields=["path"], name="orgunit_path_idx", opclasses=["varchar_pattern_ops"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def depth(self) -> int:
        return self.path.count("/") - 1

    def compute_path(self) -> str:
        return f"{self.parent.path if self.parent_id else ''}{self.code}/"

    def is_within(self, other: "OrgUnit") -> bool:
        return self.path.startswith(other.path)


class Membership(models.Model):
    """A user's role within an org unit (and so within the unit's subtree)."""

    class Role(models.TextChoices):
        CLINICIAN = "clinician", "Clinician"
        CLINICAL_LEAD = "clinical_lead", "Clinical lead"
        MANAGER = "manager", "Manager"
        FINANCE = "finance", "Finance"
        ADMIN = "admin", "Administrator"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    org_unit = models.ForeignKey(OrgUnit, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "org_unit", "role"], name="membership_unique_role_in_unit"),
        ]

    def __str__(self) -> str:
        return f"{self.user} - {self.get_role_display()} in {self.org_unit.code}"


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class ApiToken(models.Model):
    """A bearer token for the REST API. Only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return "cp_" + secrets.token_urlsafe(32)

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class AuditEvent(models.Model):
    """Append-only, hash-chained record of who did what (see accounts/audit.py).

    The database refuses UPDATE and DELETE on this table (migration 0002), so
    neither the ORM nor raw SQL from the application can rewrite history.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=20, blank=True)
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    episode_ref = models.CharField(max_length=64, blank=True, db_index=True)
    # The org unit the object belongs to: what scopes the audit reports a clinical lead may read.
    org_unit = models.ForeignKey("OrgUnit", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    request_id = models.CharField(max_length=64, blank=True)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_type}:{self.object_id}"


class AuditCheck(models.Model):
    """One run of the audit-chain verification (nightly, or asked for by an administrator).

    The check runs on a worker (``accounts.verify_audit_chain``) so that tampering
    is noticed without anyone remembering to run ``manage.py verify_audit``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        PASSED = "passed", "Chain intact"
        FAILED = "failed", "Chain broken"

    requested_at = models.DateTimeField(default=timezone.now)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    events_checked = models.PositiveBigIntegerField(default=0)
    # An id, not a foreign key: the bad event may be the one that was deleted.
    first_bad_event_id = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    # The chain's end when it passed: later checks require it to be still there, unchanged,
    # so that deleting the newest events (which leaves a shorter, valid chain) is noticed.
    last_event_id = models.BigIntegerField(null=True, blank=True)
    last_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="auditcheck_finished_has_time",
                condition=Q(status__in=["pending", "running"]) | Q(finished_at__isnull=False),
            ),
            models.CheckConstraint(
                name="auditcheck_failed_names_event",
                condition=~Q(status="failed") | Q(first_bad_event_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Audit check {self.pk}: {self.get_status_display()}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.PASSED, self.Status.FAILED)


class IdempotencyKey(models.Model):
    """One client's ``Idempotency-Key`` for an API POST, and the response it produced.

    The unique constraint on (client, key) is what makes a retried or duplicated
    request safe: concurrent requests race on the INSERT, and exactly one wins
    (see ``accounts/api_support.py``). Rows are kept at least
    ``IDEMPOTENCY_KEY_RETENTION_HOURS``, then purged.
    """

    class Status(models.TextChoices):
        IN_FLIGHT = "in_flight", "In flight"
        COMPLETED = "completed", "Completed"

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    # sha256 of method, path and the canonical JSON body: the same key with another body is refused.
    request_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_unique_key_per_client"),
            models.CheckConstraint(
                name="idempotency_completed_has_response",
                condition=Q(status="in_flight") | Q(response_status__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.key} ({self.status})"
