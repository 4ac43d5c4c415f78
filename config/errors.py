"""Error pages: generic bodies with a correlation id; forbidden and missing look alike."""

import logging

from django.shortcuts import render

from accounts.context import current_request_context
from accounts.permissions import roles_of

logger = logging.getLogger("commonpath.errors")


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


def server_error(request):
    logger.error("server error on %s", request.path)
    return _render(
        request, 500, "Something went wrong", "The error has been logged. Quote the reference below if you report it."
    )
