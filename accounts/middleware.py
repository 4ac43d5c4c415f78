import re

from .context import RequestContext, new_request_id, reset_request_context, set_request_context

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Give every request a correlation id (kept from ``X-Request-ID`` when well formed)."""

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
        try:
            response = self.get_response(request)
        finally:
            reset_request_context(token)
        response["X-Request-ID"] = request.request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        set_request_context(
            RequestContext(request_id=request.request_id, address=request.META.get("REMOTE_ADDR"), user=user)
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
