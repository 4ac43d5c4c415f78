import re

from .audit import audit_record, end_denial_tally, start_denial_tally
from .context import RequestContext, new_request_id, reset_request_context, set_request_context
from .models import AuditEvent

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Give every request a correlation id (kept from ``X-Request-ID`` when well formed).

    It also audits every permission denial: a 403 answered by any layer (a view's
    ``role_required``, CSRF, the API) writes an ``access.denied`` event unless the
    code that denied already audited it with more detail.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SAFE_ID.match(incoming) else new_request_id()
        token = set_request_context(
            RequestContext(request_id=request.request_id, address=request.META.get("REMOTE_ADDR"), user=None)
        )
        # The user is resolved lazily by AuthenticationMiddleware; refresh once it is known.
        request._request_context_token = token
        tally, tally_token = start_denial_tally()
        try:
            response = self.get_response(request)
            if response.status_code == 403 and not tally.count:
                _audit_denial(request)
        finally:
            end_denial_tally(tally_token)
            reset_request_context(token)
        response["X-Request-ID"] = request.request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        set_request_context(
            RequestContext(request_id=request.request_id, address=request.META.get("REMOTE_ADDR"), user=user)
        )


def _audit_denial(request) -> None:
    user = getattr(request, "user", None)
    match = getattr(request, "resolver_match", None)
    audit_record(
        action="access.denied",
        actor=user if getattr(user, "is_authenticated", False) else None,
        object_type="url",
        object_id=(match.view_name if match else "")[:64],
        outcome=AuditEvent.Outcome.DENIED,
        # The path only: query strings may carry search terms.
        detail={"method": request.method, "path": request.path[:200]},
    )


class NoStoreMiddleware:
    """Clinical pages and API answers must not be kept by browsers or proxies."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/static/"):
            response["Cache-Control"] = "no-store"
        return response
