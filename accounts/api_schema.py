"""OpenAPI description of what every endpoint shares (kept apart from api_support to
avoid an import cycle: DRF imports the settings' classes while it is still loading).

``ApiAutoSchema`` adds to each operation the headers it honours (Idempotency-Key,
If-Match) and the problem+json answers it can give, so that the committed schema
tells integrators, and schemathesis checks, every status they may see.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiParameter
from rest_framework.permissions import AllowAny

from .api_support import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error (RFC 9457). `errors` lists each invalid field of a rejected request.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem, or about:blank."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong with this request, specifically."},
        "instance": {"type": "string"},
        "request_id": {"type": "string", "description": "Correlation id; quote it when reporting a problem."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "pointer", "detail", "code"],
                "properties": {
                    "field": {"type": "string", "description": "Dotted path of the field, empty for the whole body."},
                    "pointer": {"type": "string", "description": "JSON Pointer (as a URI fragment) to the field."},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}

OPERATION_OUTCOME_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4 OperationOutcome: the error of a FHIR endpoint, with the request id in `diagnostics`.",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                },
            },
        },
    },
}

PROBLEM_DESCRIPTIONS = {
    400: "Invalid request: `errors` names each field and what is wrong with it.",
    401: "No valid credentials: send `Authorization: Bearer <token>`.",
    403: "Your role does not allow this endpoint, or this change to a record you can read.",
    404: "Not found, or not available to you (the two look the same).",
    406: "Cannot answer in a media type your Accept header allows.",
    409: "A request with the same Idempotency-Key is still running, or the record's state forbids the change.",
    412: "If-Match names a version that is no longer current: GET the record again.",
    413: "The body is larger than the server accepts.",
    415: "Send `Content-Type: application/json`.",
    422: "The Idempotency-Key was already used with a different request.",
    428: "If-Match is required: send the ETag from your last GET.",
    429: "Too many requests: wait for the number of seconds in Retry-After.",
    503: "Briefly unavailable (e.g. the database is restarting): retry; Idempotency-Key makes it safe.",
}

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    type={"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    description="Makes a retry safe: the same key with the same body returns the stored response instead of "
    "acting twice (kept at least 24 hours). The same key with another body is refused with 422.",
)
IF_MATCH = OpenApiParameter(
    name="If-Match",
    location=OpenApiParameter.HEADER,
    required=True,
    type=str,
    description="The ETag from your last GET of this record. Without it: 428; if the record changed since: 412.",
)


LOCATION = {"schema": {"type": "string"}, "description": "The URL of the record created (or of the run to poll)."}
ETAG = {
    "schema": {"type": "string"},
    "description": "The record's version: send it back in If-Match to change the record.",
}
IDEMPOTENT_REPLAYED = {
    "schema": {"type": "string", "enum": ["true"]},
    "description": "Present when this is the stored answer to an earlier request with the same Idempotency-Key.",
}

IF_MATCH_OPTIONAL = OpenApiParameter(
    name="If-Match",
    location=OpenApiParameter.HEADER,
    required=False,
    type=str,
    description="The ETag from your last GET of this record; if the record changed since, the request is "
    "refused with 412.",
)


class ApiAutoSchema(AutoSchema):
    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(IDEMPOTENCY_KEY)
        if self.method == "PATCH":
            parameters.append(IF_MATCH)
        elif self.method == "POST" and getattr(self.view, "if_match", None):
            # "required" (428 without it) or "optional" (checked when sent; 428 still for `If-Match: *`).
            parameters.append(IF_MATCH if self.view.if_match == "required" else IF_MATCH_OPTIONAL)
        return parameters

    def _problem_statuses(self, operation: dict) -> set[int]:
        statuses = {401, 406, 503}
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            statuses.add(403)  # a public view (the FHIR metadata) refuses no role; a bad token is still 401
        if "{" in self.path:
            statuses.add(404)
        if any(p.get("in") == "query" for p in operation.get("parameters", [])):
            statuses.add(400)
        if self.method in ("POST", "PATCH", "PUT"):
            statuses |= {400, 413, 415}
        if self.method == "POST":
            statuses |= {409, 422}
        if self.method == "PATCH" or (self.method == "POST" and getattr(self.view, "if_match", None)):
            statuses |= {409, 412, 428}
        if any(getattr(t, "scope", None) for t in self.view.get_throttles()):
            statuses.add(429)
        return statuses | set(getattr(self.view, "extra_problem_statuses", ()))

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        registry.register_on_missing(
            ResolvedComponent(name="Problem", type=ResolvedComponent.SCHEMA, object="Problem", schema=PROBLEM_SCHEMA)
        )
        problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        if getattr(self.view, "errors_as_operation_outcome", False):
            problem = {"application/fhir+json": {"schema": OPERATION_OUTCOME_SCHEMA}}
        responses = operation["responses"]
        for code, response in responses.items():
            headers = response.setdefault("headers", {})
            if code in ("201", "202"):
                headers["Location"] = LOCATION
            if code.startswith("2") and self.method in getattr(self.view, "etag_methods", ()):
                headers["ETag"] = ETAG
            if code.startswith("2") and self.method == "POST":
                headers["Idempotent-Replayed"] = IDEMPOTENT_REPLAYED
            if not headers:
                del response["headers"]
        for code in sorted(self._problem_statuses(operation)):
            entry = {"description": PROBLEM_DESCRIPTIONS[code], "content": problem}
            if code == 429:
                entry["headers"] = {
                    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait.", "required": True}
                }
            responses.setdefault(str(code), entry)
        return operation


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from `manage.py create_api_token USERNAME`.",
        }
