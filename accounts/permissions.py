"""Who may do what, and over which org units. Every view states its rule.

``LoginRequiredMiddleware`` denies anonymous access by default; on top of it each
view carries ``@role_required(...)`` (or ``@login_not_required`` for the few
public pages), and ``tests/security/test_every_view_has_a_rule.py`` walks the URL
resolver to prove no view was left without one.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404

from .models import Membership, OrgUnit

Role = Membership.Role

ALL_ROLES = tuple(Role.values)
# Roles that may see individual episodes (managers and finance see org units only).
EPISODE_ROLES = (Role.CLINICIAN, Role.CLINICAL_LEAD, Role.ADMIN)
AUTHOR_ROLES = (Role.CLINICAL_LEAD, Role.ADMIN)
FINANCE_ROLES = (Role.FINANCE, Role.ADMIN)
AGGREGATE_ROLES = (Role.MANAGER, Role.FINANCE)


def _memberships(user):
    """The user's memberships, loaded once per request and cached on the user object."""
    if not getattr(user, "is_authenticated", False):
        return []
    cached = getattr(user, "_cp_memberships", None)
    if cached is None:
        cached = list(Membership.objects.filter(user=user).select_related("org_unit"))
        user._cp_memberships = cached
    return cached


def roles_of(user) -> set[str]:
    return {m.role for m in _memberships(user)}


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def units_for(user, *roles: str):
    """Org units (whole subtrees) where ``user`` holds any of ``roles``."""
    roots = [m.org_unit for m in _memberships(user) if m.role in roles]
    if not roots:
        return OrgUnit.objects.none()
    return OrgUnit.objects.subtree_of(roots)


def unit_ids_for(user, *roles: str) -> list[int]:
    key = "_cp_units_" + ",".join(sorted(roles))
    cached = getattr(user, key, None)
    if cached is None:
        cached = list(units_for(user, *roles).values_list("pk", flat=True))
        setattr(user, key, cached)
    return cached


def can_see_individuals(user) -> bool:
    """Named clinicians and free-text rationale: clinicians, leads and admins only."""
    return has_role(user, *EPISODE_ROLES)


def primary_role(user) -> str | None:
    """The role whose home page the user lands on (the most senior they hold)."""
    order = [Role.ADMIN, Role.CLINICAL_LEAD, Role.CLINICIAN, Role.MANAGER, Role.FINANCE]
    held = roles_of(user)
    for role in order:
        if role in held:
            return role
    return None


def role_required(*roles: str):
    """Allow the view only to users holding one of ``roles`` somewhere; 403 otherwise."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.access_rule = ("roles", tuple(roles))
        return wrapped

    return decorator


def any_member(view):
    """Any signed-in user with at least one membership."""
    return role_required(*ALL_ROLES)(view)


def out_of_scope(*, object_type: str, object_id: str) -> Http404:
    """Audit a denied look at an object outside the user's scope; return the 404 to raise.

    Views raise it (``raise out_of_scope(...)``) so that a forbidden object looks
    exactly like a missing one, while the denial still reaches the audit trail.
    Call it only when the object exists; a missing one is a plain ``Http404``.
    """
    from .audit import audit_record  # the audit module reads roles from here

    audit_record(
        action="access.denied",
        object_type=object_type,
        object_id=object_id,
        outcome="denied",
        detail={"reason": "out of scope"},
    )
    return Http404("No such object is available to you.")
