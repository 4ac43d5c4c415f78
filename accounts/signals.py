"""Sign-in events go to the audit trail (Django's and django-axes' signals, not business logic)."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .audit import audit_record
from .models import AuditEvent

# Only the attempted username is kept for failures; the password never reaches the trail.
_USERNAME_MAX = 64


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit_record(action="login", actor=user, obj=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="logout", actor=user, obj=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    audit_record(
        action="login",
        actor=None,
        object_type="accounts.user",
        object_id=str(credentials.get("username", ""))[:_USERNAME_MAX],
        outcome=AuditEvent.Outcome.FAILURE,
    )


@receiver(user_locked_out)
def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    audit_record(
        action="login.locked_out",
        actor=None,
        object_type="accounts.user",
        object_id=str(username or "")[:_USERNAME_MAX],
        outcome=AuditEvent.Outcome.DENIED,
    )
