"""The FHIR server's CapabilityStatement: ``GET /api/v1/fhir/metadata``.

A FHIR client starts with ``GET [base]/metadata`` to learn which FHIR version the
server speaks, in which formats, which resources it serves and how to authenticate
(http://hl7.org/fhir/R4/http.html#capabilities). It lives here, beside
``config/api_urls.py``, because it describes the FHIR views of several apps.

The resources and their interactions are read from the URL patterns under the FHIR
base, so the statement can neither promise a resource the server does not route nor
leave one out: a route ``<Type>/<id>`` whose view answers GET is FHIR's ``read`` of
``Type`` (FHIR fixes that URL shape). There is no search, history, version read or
write, so none is declared.

**Anyone may read it, signed in or not.** The project denies by default, so this is a
stated exception (``access_rule = ("public",)``), for these reasons:

- FHIR says servers SHOULD answer ``metadata`` without authentication: clients read it
  before they authenticate, to learn the FHIR version and how to authenticate.
- It holds no patient, episode, pathway or organisation data: only what the FHIR
  specification and the README already say (two resource types, read, JSON, bearer
  tokens) and the software's version. It is the same for every caller. Unlike the
  OpenAPI schema, which stays behind sign-in, it lists no endpoint, field or parameter
  of the rest of the API.
- It reads nothing from the database: an anonymous request costs no query, less than
  the 401 every other endpoint gives a stranger. The API has no request-rate throttle
  beyond report requests (the TLS proxy's limits apply to all of it), so none is added
  here either. Credentials that are sent are still checked: a bad token is a 401.
"""

import functools
import re
import tomllib

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.api_support import FHIR_FORMAT, ApiMixin, FhirMixin
from accounts.authentication import BearerTokenAuthentication

FHIR_VERSION = "4.0.1"
# When the statement's content last changed (FHIR: "should change when the substantive
# content of the capability statement changes"); tests/api/test_fhir_metadata.py fails
# until it is moved on after such a change.
STATEMENT_DATE = "2026-11-29"
# A route below the FHIR base of the form ``<Type>/<id>``: FHIR's read interaction.
READ_ROUTE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/<(?:\w+:)?\w+>$")
AUTHENTICATION = {
    BearerTokenAuthentication: "Bearer token: send 'Authorization: Bearer <API token>' "
    "(an administrator issues tokens with manage.py create_api_token).",
    SessionAuthentication: "Session: a browser signed in to CommonPath.",
}
MODE = OpenApiParameter(
    "mode",
    str,
    enum=["full"],
    description="What to describe: the full CapabilityStatement (the default and the only mode served).",
)


@functools.cache
def software_version() -> str | None:
    """The project's version, from pyproject.toml (its single source); None if not deployed with the code."""
    try:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as file:
            return tomllib.load(file)["project"]["version"]
    except (OSError, KeyError):  # the version is optional in FHIR: better left out than a failing statement
        return None


def _routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def fhir_routes(base_route: str) -> list[tuple[str, object]]:
    """(route below the FHIR base, view callback) of every FHIR endpoint but ``metadata`` itself."""
    found = []
    for route, callback in _routes(get_resolver().url_patterns):
        below = route.removeprefix(base_route)
        if route.startswith(base_route) and below != "metadata":
            found.append((below, callback))
    return found


def resource_entries(base_route: str) -> list[dict]:
    entries = []
    for below, callback in fhir_routes(base_route):
        match = READ_ROUTE.match(below)
        view_class = getattr(callback, "view_class", None)
        if match is None or not hasattr(view_class, "get"):
            continue  # not a read: tests/api/test_fhir_metadata.py fails until the statement covers it
        resource_type = match["type"]
        entry = {
            "type": resource_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
            "interaction": [{"code": "read"}],
            "versioning": "no-version",
            "readHistory": False,
        }
        if view_class.__doc__:
            entry["documentation"] = view_class.__doc__.strip()
        entries.append(entry)
    return sorted(entries, key=lambda e: e["type"])


def capability_statement(*, base_url: str, base_route: str) -> dict:
    """This server as a FHIR R4 CapabilityStatement (a plain dict, JSON-ready)."""
    software = {"name": "CommonPath"}
    if software_version():
        software["version"] = software_version()
    services = [{"text": AUTHENTICATION[cls]} for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    return {
        "resourceType": "CapabilityStatement",
        "name": "CommonPathFhirServer",
        "title": "CommonPath FHIR R4 server",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": "CommonPath",
        "description": "Costed clinical pathways as PlanDefinitions and patients' episodes on them as CarePlans, "
        "read-only.",
        "kind": "instance",
        "software": software,
        "implementation": {"description": "CommonPath FHIR R4 read views", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only. Errors are OperationOutcomes; JSON only (XML is answered 406).",
                "security": {
                    "service": services,
                    "description": "Reading a resource needs a bearer token (or a signed-in session) of a user "
                    "whose role allows it; an episode's CarePlan only within the user's units, others are 404. "
                    "This statement is readable without authentication.",
                },
                "resource": resource_entries(base_route),
            }
        ],
    }


class CapabilityStatementView(FhirMixin, ApiMixin, generics.GenericAPIView):
    """This server's FHIR R4 CapabilityStatement: FHIR version, formats, resources and their interactions.

    Readable without authentication, as FHIR clients expect (it holds no record data).
    """

    permission_classes = [AllowAny]  # see the module docstring for why

    @classmethod
    def as_view(cls, *args, **initkwargs):
        view = super().as_view(*args, **initkwargs)
        view.access_rule = ("public",)
        return view

    @extend_schema(
        parameters=[FHIR_FORMAT, MODE],
        responses={(200, "application/fhir+json"): OpenApiResponse(OpenApiTypes.OBJECT, "FHIR R4 CapabilityStatement")},
    )
    def get(self, request):
        mode = request.query_params.get("mode", "full")
        if mode != "full":
            raise exceptions.ValidationError({"mode": ["This server describes itself in full only (mode=full)."]})
        route = request.resolver_match.route  # e.g. api/v1/fhir/metadata
        base_route = route.removesuffix("metadata")
        base_url = request.build_absolute_uri(request.path).removesuffix("/metadata")
        return Response(capability_statement(base_url=base_url, base_route=base_route))
