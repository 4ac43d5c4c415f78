"""Error pages: generic bodies with a correlation id; forbidden and missing look alike.

The database going away (PostgreSQL restarting, a failover) is not a server error:
every request that meets it answers 503 with ``Retry-After`` (problem+json under
/api/, the error page elsewhere), whichever layer met it: a DRF view
(``accounts.api_support.problem_exception_handler``), any other view
(``DatabaseUnavailableMiddleware``) or a middleware (``server_error``). The next
request gets a fresh connection (``CONN_HEALTH_CHECKS``), so the app recovers by itself.
"""

import logging
import sys

from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string

from accounts.api_support import PROBLEM_CONTENT_TYPE, ServiceUnavailable
from accounts.context import current_request_context
from accounts.permissions import roles_of

logger = logging.getLogger("commonpath.errors")

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def _render(request, status, title, message):
    return render(
        request,
        "error.html",
        {"title": title, "message": message, "request_id": current_request_context().request_id},
        status=status,
    )


def permission_denied(request, exception=None):
    user = getattr(request, "user", None)
    if getattr(user, "is_authenticated", False) and not roles_of(user):
        # A signed-in account with no role anywhere: every page would say "not available".
        return _render(
            request,
            403,
            "Not available to you",
            "Your account has no role in any unit yet, so there is nothing you can open. "
            "Ask your administrator to give you a role (clinician, clinical lead, manager or finance) in your unit.",
        )
    return _render(request, 403, "Not available to you", "You do not have access to this page with your current role.")


def page_not_found(request, exception=None):
    return _render(request, 404, "Not found", "There is nothing here, or it is not available to you.")


def database_unavailable(request) -> HttpResponse:
    """503 without touching the database: no session, no user, no context processors."""
    logger.warning("database unavailable on %s", request.path)
    request_id = current_request_context().request_id
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.path.startswith("/api/"):
        body = {
            "type": ServiceUnavailable.problem_type,
            "title": "Service Unavailable",
            "status": 503,
            "detail": str(ServiceUnavailable.default_detail),
            "instance": request.path,
            "request_id": request_id,
        }
        return JsonResponse(body, status=503, content_type=PROBLEM_CONTENT_TYPE, headers=headers)
    page = render_to_string(
        "error.html",
        {
            "title": "Briefly unavailable",
            "message": "CommonPath cannot reach its database just now. Nothing you sent in this request was saved: "
            "wait a few seconds and try again.",
            "request_id": request_id,
            "user": AnonymousUser(),
        },
    )
    return HttpResponse(page, status=503, headers=headers)


class DatabaseUnavailableMiddleware:
    """A view that meets a lost database connection answers 503 (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable(request)
        return None


def server_error(request):
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        # Raised by a middleware (a session or user look-up), where process_exception does not apply.
        return database_unavailable(request)
    logger.error("server error on %s", request.path)
    return _render(
        request, 500, "Something went wrong", "The error has been logged. Quote the reference below if you report it."
    )
