"""Reads of the audit trail for the audit reports, scoped to what the reader may see.

A clinical lead reads events of objects in their units and the activity of
their units' members; an administrator reads the same over their (usually
trust-wide) units, plus events that belong to no unit.
"""

from django.db.models import Count, Max, Q, QuerySet

from .models import AuditCheck, AuditEvent, Membership, User
from .permissions import has_role, unit_ids_for

Role = Membership.Role
AUDIT_READER_ROLES = (Role.CLINICAL_LEAD, Role.ADMIN)


def _reader_units(reader) -> list[int]:
    return unit_ids_for(reader, *AUDIT_READER_ROLES)


def users_in_scope(reader) -> QuerySet:
    """People and service accounts holding a role in any of the reader's units."""
    return User.objects.filter(memberships__org_unit_id__in=_reader_units(reader)).distinct().order_by("username")


def user_in_scope(reader, username: str) -> User | None:
    return users_in_scope(reader).filter(username=username).first()


def activity_of(reader, subject: User) -> QuerySet:
    """What ``subject`` did: in the reader's units, plus sign-ins and denials (which have no unit)."""
    return (
        AuditEvent.objects.filter(actor=subject)
        .filter(Q(org_unit_id__in=_reader_units(reader)) | Q(org_unit__isnull=True))
        .select_related("org_unit")
        .order_by("-id")
    )


def episode_events(reader, episode_ref: str) -> QuerySet:
    """Every recorded access to and change of the episode(s) with this pseudonymous reference."""
    scope = Q(org_unit_id__in=_reader_units(reader))
    if has_role(reader, Role.ADMIN):
        scope |= Q(org_unit__isnull=True)
    return AuditEvent.objects.filter(episode_ref=episode_ref).filter(scope).select_related("org_unit").order_by("-id")


def episode_accessors(events: QuerySet) -> list[dict]:
    """Who accessed it: one row per actor, with how often and when last."""
    return list(
        events.order_by()
        .values("actor_name", "role")
        .annotate(events=Count("id"), last_at=Max("at"))
        .order_by("-last_at")
    )


def recent_events(reader, limit: int = 25) -> list[AuditEvent]:
    scope = Q(org_unit_id__in=_reader_units(reader))
    if has_role(reader, Role.ADMIN):
        scope |= Q(org_unit__isnull=True)
    return list(AuditEvent.objects.filter(scope).select_related("org_unit").order_by("-id")[:limit])


def latest_check() -> AuditCheck | None:
    return AuditCheck.objects.order_by("-requested_at", "-id").first()
