from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .audit import audit_record
from .models import ApiToken, AuditCheck, OrgUnit, User
from .queueing import enqueue_on_commit
from .tasks import verify_audit_chain


@transaction.atomic
def org_unit_create(*, code: str, name: str, kind: str, parent: OrgUnit | None = None) -> OrgUnit:
    unit = OrgUnit(code=code, name=name, kind=kind, parent=parent)
    unit.path = unit.compute_path()
    unit.full_clean()
    unit.save()
    return unit


@transaction.atomic
def api_token_create(
    *, user: User, name: str = "", expires_days: int | None = None, actor=None
) -> tuple[ApiToken, str]:
    """Mint a bearer token for ``user``. Returns the row and the secret, which is never stored."""
    if expires_days is not None and expires_days < 1:
        raise ValidationError({"expires_days": "A token must last at least one day (or omit it to never expire)."})
    if not user.is_active:
        raise ValidationError({"user": f"{user.username} is deactivated; a token for it would never work."})
    raw = ApiToken.generate()
    token = ApiToken(
        user=user,
        name=name.strip(),
        prefix=raw[:12],
        digest=ApiToken.hash(raw),
        expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None,
    )
    token.full_clean()
    token.save()
    audit_record(
        action="api_token.create",
        actor=actor,
        obj=token,
        detail={"user": user.username, "expires_at": token.expires_at.isoformat() if token.expires_at else None},
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor) -> ApiToken:
    """Revoke a token at once; revoking twice keeps the first revocation time."""
    now = timezone.now()
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        audit_record(action="api_token.revoke", actor=actor, obj=token, detail={"user": token.user.username})
    token.refresh_from_db(fields=["revoked_at"])
    return token


@transaction.atomic
def audit_check_request(*, requested_by: User | None = None) -> AuditCheck:
    """Ask a worker to verify the audit chain; the result lands on the returned row."""
    check = AuditCheck(requested_by=requested_by)
    check.full_clean()
    check.save()
    audit_record(action="audit.verify_requested", actor=requested_by, obj=check)
    enqueue_on_commit(verify_audit_chain, check.pk)  # sent again by sweep_audit_checks if the broker is down
    return check
