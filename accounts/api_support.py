"""What every REST endpoint shares: errors, access, limits, idempotency and versions.

- Errors are ``application/problem+json`` (RFC 9457) with a specific ``detail``,
  per-field ``errors`` and the request's correlation id; never a stack trace,
  SQL or a setting (``problem_exception_handler``).
- Access is denied by default: a view names the roles that may use it
  (``ApiMixin.access_roles``) and scopes its querysets to the caller's units;
  an object outside the caller's scope answers 404 exactly like a missing one.
- ``Idempotency-Key`` on POST: the (client, key) unique constraint decides which
  of several concurrent requests runs; the others wait for nothing and get 409
  (still running), the stored response (finished, same body) or 422 (other body).
  Refusals that depend on state a retry may find changed (401, 403, 404, 409, 412,
  428, 429) are not stored: a retry under the key runs again.
  On PostgreSQL the running request also holds an advisory lock on its key, which
  dies with its connection: a retry after a database restart or a killed process
  takes the key over at once instead of getting 409 until ``IN_FLIGHT_TIMEOUT``.
- ``ETag`` / ``If-Match`` for optimistic concurrency on PATCH (428 without, 412 stale).
- Limits: page size, body size, report requests per client.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from http import HTTPStatus

import django_filters
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .api_query import check_query_parameters
from .audit import audit_record
from .context import RequestContext, current_request_context, set_request_context
from .models import AuditEvent, IdempotencyKey, OrgUnit
from .permissions import has_role

logger = logging.getLogger("commonpath.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:commonpath:problem:"


# --- Problems (RFC 9457) -------------------------------------------------------------


class Problem(exceptions.APIException):
    """An API error with its own problem type (a URN naming the kind of failure)."""

    problem_type = "about:blank"
    headers: dict[str, str] = {}

    def __init__(self, detail=None, *, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.headers = headers or {}


class PreconditionRequired(Problem):
    status_code = 428
    default_detail = "Send If-Match with the ETag of the version you are changing (from your last GET)."
    problem_type = PROBLEM_BASE + "precondition-required"


class PreconditionFailed(Problem):
    status_code = 412
    default_detail = "The record has changed since you read it. GET it again, re-apply your change and resend."
    problem_type = PROBLEM_BASE + "stale-version"


class IdempotencyKeyInFlight(Problem):
    status_code = 409
    default_detail = "A request with this Idempotency-Key is still being processed. Retry in a moment."
    problem_type = PROBLEM_BASE + "idempotency-key-in-flight"


class IdempotencyKeyReused(Problem):
    status_code = 422
    default_detail = (
        "This Idempotency-Key was already used for a different request (another body or URL). "
        "Use a new key for a new request."
    )
    problem_type = PROBLEM_BASE + "idempotency-key-reused"


class Conflict(Problem):
    status_code = 409
    default_detail = "The request conflicts with the current state of the record."
    problem_type = PROBLEM_BASE + "conflict"


class PayloadTooLarge(Problem):
    status_code = 413
    problem_type = PROBLEM_BASE + "payload-too-large"


class ServiceUnavailable(Problem):
    status_code = 503
    default_detail = (
        "The service is briefly unavailable. Retry shortly; requests with an Idempotency-Key are safe to retry."
    )
    problem_type = PROBLEM_BASE + "service-unavailable"


_DETAIL_OVERRIDES = {
    exceptions.NotAuthenticated: "Authentication is required: send 'Authorization: Bearer <token>' or sign in.",
    exceptions.NotFound: "Not found, or not available to you.",
}


def _flatten_errors(detail, prefix: tuple = ()) -> list[dict]:
    """DRF's nested error structure as a flat list of {field, pointer, detail, code}."""
    if isinstance(detail, Mapping):
        items = []
        for key, value in detail.items():
            path = prefix if key in ("non_field_errors", "__all__") else (*prefix, str(key))
            items.extend(_flatten_errors(value, path))
        return items
    if isinstance(detail, list):
        items = []
        nested = any(isinstance(v, Mapping | list) for v in detail)
        for index, value in enumerate(detail):
            if nested:
                if value:  # an empty entry means "this list item was valid"
                    items.extend(_flatten_errors(value, (*prefix, str(index))))
            else:
                items.extend(_flatten_errors(value, prefix))
        return items
    field = ".".join(prefix)
    pointer = "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in prefix) if prefix else "#"
    code = getattr(detail, "code", None) or "invalid"
    return [{"field": field, "pointer": pointer, "detail": str(detail), "code": code}]


def _validation_summary(errors: list[dict]) -> str:
    if len(errors) == 1:
        error = errors[0]
        return f"{error['field']}: {error['detail']}" if error["field"] else error["detail"]
    fields = sorted({e["field"] for e in errors if e["field"]})
    general = [e["detail"] for e in errors if not e["field"]]
    parts = []
    if fields:
        parts.append(f"{len(errors)} problems; check {', '.join(fields)}")
    if general:
        parts.append(" ".join(general))
    return ". ".join(parts) + ("" if parts[-1].endswith(".") else ".")


def django_validation_detail(exc: DjangoValidationError):
    """A Django ValidationError (from a service's ``full_clean``) in DRF's error shape."""
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def problem_response(
    request,
    *,
    status_code: int,
    detail: str,
    problem_type: str = "about:blank",
    title: str | None = None,
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "type": problem_type,
        "title": title or HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "instance": request.path if request is not None else "",
        "request_id": current_request_context().request_id,
    }
    if errors is not None:
        body["errors"] = errors
    if request is not None and not isinstance(getattr(request, "accepted_renderer", None), JSONRenderer):
        # A view that answers in another format (the schema's YAML), or a request whose Accept
        # header names nothing the API serves (406), still errs in problem+json's JSON.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = PROBLEM_CONTENT_TYPE
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error the API returns goes through here."""
    request = context.get("request")
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(django_validation_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, OperationalError | InterfaceError):
        # Database unreachable or restarting: a clean 503 the client can retry, never a trace.
        logger.warning("database unavailable: %s", type(exc).__name__)
        exc = ServiceUnavailable(headers={"Retry-After": "5"})

    if not isinstance(exc, exceptions.APIException):
        logger.error("unhandled API error on %s", request.path if request else "?", exc_info=exc)
        return problem_response(
            request,
            status_code=500,
            detail="Something went wrong on the server. The error has been logged; quote the request_id if you report it.",
        )

    headers = dict(getattr(exc, "headers", {}) or {})
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))

    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten_errors(exc.detail)
        if request is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
            # A refused write is part of the record too: who tried what, and that it failed.
            fields = sorted({e["field"] for e in errors})[:20]
            audit_record(
                action="api.write_refused",
                object_type="api",
                object_id=request.path[:64],
                outcome=AuditEvent.Outcome.FAILURE,
                detail=_storable({"method": request.method, "fields": [f[:64] for f in fields]}),
            )
        return problem_response(
            request,
            status_code=400,
            detail=_validation_summary(errors) if errors else "The request is invalid.",
            problem_type=PROBLEM_BASE + "validation-error",
            title="Invalid request",
            errors=errors,
            headers=headers,
        )

    if isinstance(exc, exceptions.AuthenticationFailed):
        audit_record(
            action="api.authenticate",
            actor=None,
            object_type="api",
            object_id=request.path[:64] if request else "",
            outcome=AuditEvent.Outcome.FAILURE,
            detail={"reason": str(exc.detail)},
        )
    elif isinstance(exc, exceptions.PermissionDenied) and request is not None:
        audit_record(
            action="api.denied",
            object_type="api",
            object_id=request.path[:64],
            outcome=AuditEvent.Outcome.DENIED,
            detail={"method": request.method},
        )

    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    for klass, text in _DETAIL_OVERRIDES.items():
        if type(exc) is klass and str(exc.detail) == str(klass.default_detail):
            detail = text
    if type(exc) is exceptions.NotAcceptable and str(exc.detail) == str(exc.default_detail) and request is not None:
        asked = request.META.get("HTTP_ACCEPT", "")[:200]
        detail = f"This endpoint answers application/json (errors application/problem+json); the Accept header asked for {asked}."
    return problem_response(
        request,
        status_code=exc.status_code,
        detail=str(detail),
        problem_type=getattr(exc, "problem_type", "about:blank"),
        headers=headers,
    )


# --- Parsing, rendering, pagination --------------------------------------------------


class LimitedJSONParser(JSONParser):
    """JSON bodies up to ``API_MAX_BODY_BYTES``; larger bodies get 413 before any parsing."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        too_large = PayloadTooLarge(f"The request body is larger than the limit of {limit:,} bytes.")
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise too_large
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant, object_pairs_hook=_refuse_repeats)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}") from None
        except RecursionError:
            raise exceptions.ParseError("The body is not JSON this API reads: it is nested too deeply.") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _refuse_repeats(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object naming a key twice: which value was meant cannot be known, so it is refused."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        repeated = next(key for key, _value in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {repeated!r} is given twice in one object")
    return result


class FhirJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class FhirContentNegotiation(BaseContentNegotiation):
    """FHIR resources are served as application/fhir+json, also to ``Accept: application/json``.

    A client asking only for something else (``application/fhir+xml``, or ``?_format=xml``)
    gets 406 rather than JSON it did not ask for.
    """

    ACCEPTED = {"application/fhir+json", "application/json", "application/*", "*/*"}
    FORMATS = {"json", "application/json", "application/fhir+json"}

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        asked = request.query_params.get("_format")
        if asked is not None and asked not in self.FORMATS:
            raise exceptions.NotAcceptable(
                f"This server answers FHIR in JSON only (_format=json), not _format={asked[:50]}."
            )
        ranges = [part.split(";")[0].strip().lower() for part in request.META.get("HTTP_ACCEPT", "").split(",")]
        if asked is None and any(ranges) and not self.ACCEPTED.intersection(ranges):
            raise exceptions.NotAcceptable(
                "This server answers FHIR in JSON only (application/fhir+json); "
                f"the Accept header asked for {request.META.get('HTTP_ACCEPT', '')[:200]}."
            )
        return renderers[0], renderers[0].media_type


FHIR_FORMAT = OpenApiParameter(
    "_format",
    str,
    enum=sorted(FhirContentNegotiation.FORMATS),
    description="FHIR's format override; this server answers JSON only (XML is 406).",
)

# FHIR's issue type for each HTTP status the API answers (http://hl7.org/fhir/R4/valueset-issue-type.html).
FHIR_ISSUE_TYPES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported"}
FHIR_ISSUE_TYPES |= {406: "not-supported", 409: "conflict", 429: "throttled"}


class FhirMixin:
    """FHIR endpoints: application/fhir+json, and errors as an OperationOutcome, as FHIR clients expect."""

    renderer_classes = [FhirJSONRenderer]
    content_negotiation_class = FhirContentNegotiation
    filter_backends = []
    errors_as_operation_outcome = True  # read by the schema (accounts/api_schema.py)

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        response.data = operation_outcome(response.status_code, response.data)
        response.content_type = FhirJSONRenderer.media_type
        return response


def operation_outcome(status_code: int, problem: dict) -> dict:
    """A problem+json body as the FHIR OperationOutcome a FHIR client reads."""
    issue = {
        "severity": "error" if status_code < 500 else "fatal",
        "code": FHIR_ISSUE_TYPES.get(status_code, "exception"),
        "diagnostics": f"{problem['detail']} (request_id {problem['request_id']})",
    }
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class Pagination(LimitOffsetPagination):
    """``?limit=&offset=``; limits above ``API_MAX_PAGE_SIZE`` are reduced to it."""

    default_limit = 50

    @property
    def max_limit(self) -> int:
        return settings.API_MAX_PAGE_SIZE

    def _int_param(self, request, name: str, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not re.fullmatch(r"\d+", raw) or int(raw[:30]) < minimum:
            raise exceptions.ValidationError({name: [f"Must be a whole number of at least {minimum}."]})
        # Beyond 30 digits the exact value cannot matter (limits are capped, offsets past the end).
        return int(raw) if len(raw) <= 30 else 10**30

    def get_limit(self, request):
        value = self._int_param(request, self.limit_query_param, 1)
        return self.default_limit if value is None else min(value, self.max_limit)

    def get_offset(self, request):
        return self._int_param(request, self.offset_query_param, 0) or 0

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page (default {self.default_limit}; values above "
                f"{settings.API_MAX_PAGE_SIZE} are reduced to {settings.API_MAX_PAGE_SIZE}).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.offset_query_param,
                "required": False,
                "in": "query",
                "description": "Index of the first result to return.",
                "schema": {"type": "integer", "minimum": 0},
            },
        ]


# --- Access --------------------------------------------------------------------------


class RoleRequired(BasePermission):
    """Deny by default: the view must name its roles in ``access_roles`` and the caller hold one."""

    def has_permission(self, request, view):
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False
        roles = getattr(view, "access_roles", ())
        if not roles:
            return False
        if has_role(user, *roles):
            return True
        self.message = "Your role does not allow this. It needs one of: " + ", ".join(
            str(r).replace("_", " ") for r in roles
        )
        return False


# Base behaviour of every CommonPath API view.
#
# - ``access_roles``: who may call it at all (deny by default when empty).
# - the request context (read by the audit trail and the logs) learns the user
#   as soon as DRF has authenticated the request, so token callers are audited
#   under their own name.
# - ``as_view`` labels the view with its access rule for the URL-walking test.
# - query parameters the endpoint does not document are refused (``api_query``).
# (A comment, not a docstring: drf-spectacular would show it on views without their own.)
class ApiMixin:
    access_roles: tuple[str, ...] = ()
    permission_classes = [RoleRequired]

    @classmethod
    def as_view(cls, *args, **initkwargs):
        view = super().as_view(*args, **initkwargs)
        view.access_rule = ("roles", tuple(cls.access_roles))
        return view

    def perform_authentication(self, request):
        user = request.user
        ctx = current_request_context()
        set_request_context(RequestContext(request_id=ctx.request_id, address=ctx.address, user=user))

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticated and allowed first: no hints to strangers
        check_query_parameters(request)


# Largest id a database integer key holds: a bigger number in a URL can only be "not found".
MAX_ID = 2**63 - 1


def object_in_scope_or_404(scoped_queryset, *, label: str, **lookup):
    """The object from the caller's scoped queryset, or 404 (audited as a denial when it exists)."""
    if any(isinstance(v, int) and not 0 <= v <= MAX_ID for v in lookup.values()):
        raise exceptions.NotFound(f"No {label} with this identifier is available to you.")
    obj = scoped_queryset.filter(**lookup).first()
    if obj is not None:
        return obj
    if scoped_queryset.model._default_manager.filter(**lookup).exists():
        audit_record(
            action="api.denied",
            object_type=scoped_queryset.model._meta.label_lower,
            object_id=str(next(iter(lookup.values())))[:64],
            outcome=AuditEvent.Outcome.DENIED,
            detail={"reason": "out of scope"},
        )
    raise exceptions.NotFound(f"No {label} with this identifier is available to you.")


# --- Strict input ----------------------------------------------------------------------

SERVER_SET_FIELDS = frozenset(
    {
        "id",
        "recorded_at",
        "recorded_by",
        "status",
        "revision",
        "created_at",
        "updated_at",
        "updated_by",
        "documented_at",
        "reviewed_by",
        "reviewed_at",
        "detection",
        "source",
        "expected_cost",
        "actual_cost",
        "costs",
        "cost",
        "progress",
        "result",
        "requested_by",
        "requested_at",
        "etag",
    }
)


# Rejects fields the serializer does not accept, naming them (mass-assignment guard).
# (A comment, not a docstring: drf-spectacular would show it on every input schema.)
class StrictInputMixin:
    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            for name in data:
                if name in writable:
                    continue
                if name in SERVER_SET_FIELDS or name in self.fields:
                    unknown[name] = [f"'{name}' is set by the server and cannot be sent."]
                else:
                    unknown[name] = [f"Unknown field. Accepted fields: {', '.join(sorted(writable))}."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, Mapping):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictSerializer(StrictInputMixin, serializers.Serializer):
    pass


# Clinical and financial dates outside these years are typing mistakes, and far-off
# dates overflow date arithmetic (a window end, a day after the last day of 9999).
EARLIEST_YEAR, LATEST_YEAR = 1900, 2200


def check_year(value):
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise serializers.ValidationError(f"Give a date between the years {EARLIEST_YEAR} and {LATEST_YEAR}.")
    return value


class StrictDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a time zone only: a naive time at a hospital boundary is ambiguous."""

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601 with a UTC offset, e.g. 2025-03-01T09:30:00Z")
        if not re.search(r"(Z|[+-]\d\d:?\d\d)$", value.strip()):
            raise serializers.ValidationError("Give a time zone, e.g. 2025-03-01T09:30:00Z or +01:00.")
        try:
            return check_year(super().to_internal_value(value))
        except OverflowError:
            raise serializers.ValidationError(
                f"Give a date between the years {EARLIEST_YEAR} and {LATEST_YEAR}."
            ) from None


class StrictDateField(serializers.DateField):
    def to_internal_value(self, value):
        return check_year(super().to_internal_value(value))


@extend_schema_field({"type": "string", "format": "decimal", "example": "4167.125"})
class MoneyField(serializers.Field):
    """A Decimal amount as a string at full precision ("4167.125"): clients round, never the API."""

    def __init__(self, **kwargs):
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value):
        return money_str(value)


def money_str(value) -> str | None:
    if value is None:
        return None
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


# --- Filters -------------------------------------------------------------------------------


def _unknown_code(noun: str) -> str:
    return f"There is no {noun} with the code %(value)s."  # %-formatted with the value on its way out


@extend_schema_field({"type": "string"})
class CodeFilter(django_filters.ModelChoiceFilter):
    """``?org_unit=ORTHO``: a record named by its code; an unknown code is a 400, not an empty page."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("to_field_name", "code")
        queryset = kwargs.get("queryset")
        if queryset is not None:
            noun = queryset.model._meta.verbose_name
            kwargs.setdefault("error_messages", {"invalid_choice": _unknown_code(noun)})
        super().__init__(*args, **kwargs)


class KnownCodeField(forms.CharField):
    def __init__(self, *args, codes, noun: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.codes = codes
        self.noun = noun

    def clean(self, value):
        value = super().clean(value)
        if value and not self.codes.filter(code=value).exists():
            raise forms.ValidationError(_unknown_code(self.noun), code="invalid_choice", params={"value": value})
        return value


class KnownCodeFilter(django_filters.CharFilter):
    """``?step=SURGERY``: records with that code; a code that ``codes`` does not hold is a 400, not an empty page.

    For codes one record does not own (a step's code recurs in each version of its pathway; a local
    reason code may share a base code's), where ``CodeFilter`` cannot look up the one record.
    ``codes`` is reference data: checking against it tells the caller nothing about their scope.
    """

    field_class = KnownCodeField


class UnitFilter(CodeFilter):
    """``?org_unit=CODE``: records of that unit or any unit below it."""

    def __init__(self, *args, field_name: str = "org_unit", **kwargs):
        self.path_field = f"{field_name}__path__startswith"
        kwargs.setdefault("queryset", OrgUnit.objects.all())
        kwargs.setdefault("help_text", "Org unit code: records of that unit and the units below it.")
        super().__init__(*args, field_name=field_name, **kwargs)

    def filter(self, qs, value):
        if value in ([], (), {}, "", None):
            return qs
        return qs.filter(**{self.path_field: value.path})


class IntegerFilter(django_filters.NumberFilter):
    """A whole number (a NumberFilter would accept 1.5 for an id)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class BoundedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not re.search(r"(Z|[+-]\d\d:?\d\d)$", value.strip()):
            # As in request bodies: a time without its zone is read an hour out half the year.
            raise forms.ValidationError(  # %% because the message is %-formatted on its way out
                "Give a time zone, e.g. 2025-03-01T09:30:00Z or +01:00 (written %%2B01:00 in a query string)."
            )
        message = f"Give a time between the years {EARLIEST_YEAR} and {LATEST_YEAR}."
        try:
            result = super().to_python(value)
        except OverflowError:
            raise forms.ValidationError(message) from None
        if result is not None and not EARLIEST_YEAR <= result.year <= LATEST_YEAR:
            raise forms.ValidationError(message)
        return result


class StrictBooleanField(forms.Field):
    """``true`` or ``false`` only (Django's NullBooleanField would read ``null`` or ``maybe`` as "not given")."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if str(value).lower() not in self.VALUES:
            raise forms.ValidationError("Give true or false.")
        return self.VALUES[str(value).lower()]


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class SinceFilter(django_filters.IsoDateTimeFilter):
    """``?since=2025-03-01T09:30:00Z`` (ISO 8601; encode a ``+`` offset as %2B)."""

    field_class = BoundedIsoDateTimeField


class StrictFilterSet(django_filters.FilterSet):
    """Filters that refuse an empty typed value (``?since=``) instead of silently ignoring it."""

    def is_valid(self):
        valid = super().is_valid()
        for name, filter_ in self.filters.items():
            typed = not isinstance(filter_, django_filters.CharFilter | CodeFilter)
            if typed and name in self.data and self.data.get(name) == "":
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid


# --- ETags -------------------------------------------------------------------------------


def etag(token: str) -> str:
    return f'"{token}"'


def check_if_match(request, current: str, *, required: bool = True) -> None:
    """428 without If-Match (when required), 412 when it names another version."""
    header = request.headers.get("If-Match")
    if not header:
        if required:
            raise PreconditionRequired()
        return
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if tags == ["*"]:
        raise PreconditionRequired("If-Match: * is not enough here: send the ETag of the version you read.")
    if current not in tags:
        raise PreconditionFailed(
            f"The record has changed since you read it (your If-Match {header.strip()[:80]}, now {current}). "
            "GET it again, re-apply your change and resend."
        )


# --- Idempotency ---------------------------------------------------------------------------

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# A request still "in flight" this long after it started has died with its process
# (where no advisory lock tells it sooner: not PostgreSQL).
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)
_REPLAYED_HEADERS = ("Location", "ETag")
# Refusals a retry may not meet: they answer the state of the record or of the caller's access, not the
# request, and that changes (an If-Match read again, a record now visible, a conflict resolved, a rate
# window passed). The key is freed, so a retry under it runs again instead of replaying them for 24 hours.
NOT_REPLAYED = frozenset({401, 403, 404, 409, 412, 428, 429})


def request_fingerprint(method: str, path: str, data) -> str:
    """What makes two requests "the same request" for an Idempotency-Key: method, path and body."""
    payload = json.dumps([method, path, data], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def key_lock_id(client_id: int, key: str) -> int:
    """The PostgreSQL advisory lock a request holds while its (client, key) is in flight."""
    digest = hashlib.sha256(f"idempotency-key:{client_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _try_lock(lock_id: int) -> bool | None:
    """Take the key's session lock: True, False (a live request holds it), None (not PostgreSQL)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_id])
        return bool(cursor.fetchone()[0])


def _unlock(lock_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])
    except DatabaseError:
        logger.warning("could not release an idempotency key lock")  # the connection is gone, and its locks with it


def _claim(request, key: str, *, owner_gone: bool) -> tuple[IdempotencyKey | None, IdempotencyKey | None]:
    """(row we now own, None) or (None, completed row to replay); raises 409/422 otherwise.

    ``owner_gone``: we hold the key's advisory lock, so a row still in flight belongs
    to a request whose connection died (a database restart, a killed process).
    """
    request_hash = request_fingerprint(request.method, request.get_full_path(), request.data)
    client = request.user
    for _attempt in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    client=client,
                    key=key,
                    method=request.method,
                    path=request.get_full_path()[:500],
                    request_hash=request_hash,
                    created_at=now,
                )
            return row, None
        except IntegrityError:
            pass
        existing = IdempotencyKey.objects.filter(client=client, key=key).first()
        if existing is None:
            continue  # purged between our insert and our read: try the insert again
        retention = timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS)
        if existing.created_at < now - retention:
            IdempotencyKey.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused()
        if existing.status == IdempotencyKey.Status.COMPLETED:
            return None, existing
        if owner_gone or existing.created_at < now - IN_FLIGHT_TIMEOUT:
            # The first attempt died without finishing (its transaction rolled back): take it over.
            taken = IdempotencyKey.objects.filter(
                pk=existing.pk, status=IdempotencyKey.Status.IN_FLIGHT, created_at=existing.created_at
            ).update(created_at=now)
            if taken:
                existing.created_at = now
                return existing, None
            continue
        raise IdempotencyKeyInFlight(headers={"Retry-After": "1"})
    raise IdempotencyKeyInFlight(headers={"Retry-After": "1"})


def _storable(value):
    """JSON as PostgreSQL's jsonb can hold it: no NUL characters (an error may echo a client's field name)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _complete(row: IdempotencyKey, response: Response) -> None:
    body = _storable(json.loads(JSONRenderer().render(response.data))) if response.data is not None else None
    headers = {name: response[name] for name in _REPLAYED_HEADERS if response.has_header(name)}
    if response.content_type:  # set only where it is not the renderer's (problem+json)
        headers["Content-Type"] = response.content_type
    IdempotencyKey.objects.filter(pk=row.pk).update(
        status=IdempotencyKey.Status.COMPLETED,
        response_status=response.status_code,
        response_body=body,
        response_headers=headers,
        completed_at=timezone.now(),
    )


def _release(row: IdempotencyKey) -> None:
    try:
        IdempotencyKey.objects.filter(pk=row.pk, status=IdempotencyKey.Status.IN_FLIGHT).delete()
    except DatabaseError:
        # The database is what failed; the row is taken over after IN_FLIGHT_TIMEOUT.
        logger.warning("could not release idempotency key %s", row.pk)


def _replay(stored: IdempotencyKey) -> Response:
    headers = dict(stored.response_headers)
    content_type = headers.pop("Content-Type", None)
    headers["Idempotent-Replayed"] = "true"
    return Response(stored.response_body, status=stored.response_status, headers=headers, content_type=content_type)


def idempotent(view, request, action: Callable[[], Response]) -> Response:
    """Run ``action`` at most once per (client, Idempotency-Key).

    The key row is marked completed inside the same transaction as the write, so
    a crash can never leave a committed write behind a key that looks unfinished.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return action()
    if not _KEY_RE.match(key):
        raise exceptions.ValidationError(
            {"Idempotency-Key": ["Use 1-255 visible ASCII characters (a UUID is a good choice)."]}
        )
    lock_id = key_lock_id(request.user.pk, key)
    locked = _try_lock(lock_id)
    if locked is False:
        raise IdempotencyKeyInFlight(headers={"Retry-After": "1"})  # its request is running right now
    try:
        return _run_once(view, request, key, action, owner_gone=bool(locked))
    finally:
        if locked:
            _unlock(lock_id)


def _run_once(view, request, key: str, action: Callable[[], Response], *, owner_gone: bool) -> Response:
    row, stored = _claim(request, key, owner_gone=owner_gone)
    if stored is not None:
        return _replay(stored)
    try:
        with transaction.atomic():
            response = action()
            if response.status_code < 500:
                _complete(row, response)
    except Exception as exc:  # handled below: the client gets a problem response, the key is kept or freed
        response = view.handle_exception(exc)
        if response.status_code < 500 and response.status_code not in NOT_REPLAYED:
            # A rejected request is rejected the same way when retried: remember the answer.
            with transaction.atomic():
                _complete(row, response)
        else:
            _release(row)
        return response
    if response.status_code >= 500:
        _release(row)
    return response


def purge_idempotency_keys(*, now=None) -> int:
    """Delete keys older than ``IDEMPOTENCY_KEY_RETENTION_HOURS`` (in-flight ones included: long dead)."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- Throttling ---------------------------------------------------------------------------


class ReportRequestThrottle(SimpleRateThrottle):
    """Report requests per client (user or service account), e.g. ``10/min``: 429 with Retry-After."""

    scope = "reports"

    def get_rate(self):
        # Read at request time (DRF reads it once at import), so a settings change applies.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


# --- Unknown endpoints -----------------------------------------------------------------


@csrf_exempt  # it changes nothing, and must answer a stray POST in problem+json, not with the CSRF page
@login_not_required
def endpoint_not_found(request, *args, **kwargs):
    """Unknown paths under /api/v1/ answer in problem+json like the rest of the API."""
    body = {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "There is no such API endpoint. See /api/v1/docs/ for the list.",
        "instance": request.path,
        "request_id": current_request_context().request_id,
    }
    if "/fhir/" in request.path:  # FHIR clients read errors as OperationOutcomes
        return JsonResponse(operation_outcome(404, body), status=404, content_type=FhirJSONRenderer.media_type)
    return JsonResponse(body, status=404, content_type=PROBLEM_CONTENT_TYPE)


endpoint_not_found.access_rule = ("public",)
