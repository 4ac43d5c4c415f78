"""Sign-in events go to the audit trail (Django's own auth signals, not business logic)."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .audit import audit_record
from .models import AuditEvent


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit_record(action="login", actor=user, obj=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="logout", actor=user, obj=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    # Only the attempted username is kept; the password never reaches the trail.
    audit_record(
        action="login",
        actor=None,
        object_type="accounts.user",
        object_id=str(credentials.get("username", ""))[:64],
        outcome=AuditEvent.Outcome.FAILURE,
    )
