from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.db import connection, transaction
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator

from .permissions import any_member

_SIGN_IN_LOCK_CLASS = 0x4C4F47  # "LOG": advisory-lock namespace of sign-in attempts


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["failure_limit"] = settings.AXES_FAILURE_LIMIT
        return context

    def post(self, request, *args, **kwargs):
        # Attempts on one account name run one at a time, so each sees the failures
        # recorded before it: a burst of concurrent guesses gets no more password
        # checks than the failure limit allows (tests/security/test_concurrent_lockout.py).
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        [_SIGN_IN_LOCK_CLASS, request.POST.get("username", "")[:150]],
                    )
            return super().post(request, *args, **kwargs)


LoginView.access_rule = ("public",)


class LogoutView(auth_views.LogoutView):
    pass


LogoutView.access_rule = ("authenticated",)


@method_decorator(any_member, name="dispatch")
class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


PasswordChangeView.access_rule = ("roles", "any")


@method_decorator(any_member, name="dispatch")
class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


PasswordChangeDoneView.access_rule = ("roles", "any")
