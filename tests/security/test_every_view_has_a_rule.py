"""Check 1 (walk): every URL's view states who may use it; none is left to chance.

A view states its rule with ``accounts.permissions.role_required``/``any_member``
(which set ``view.access_rule``), an explicit ``access_rule = ("public",)`` for
the few pages anyone may open, or, for REST views, the API's ``access_roles``
(``accounts.api_support``) or explicitly declared ``permission_classes``.
Django's admin is handled by its own staff check.
"""

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

# The only pages anyone may open without signing in: sign-in, the health check, the FHIR
# CapabilityStatement (FHIR clients read it before they authenticate; it holds no record
# data: config/fhir.py), and the API's problem+json answer to unknown paths, under /api/v1/
# and elsewhere under /api/ (which shows nothing but "not found").
PUBLIC = {"accounts:login", "healthz", "api-fhir-metadata", "api/v1/^.*$", "^api/"}


def walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), (namespace + p.name) if p.name else "", p.callback


def rule_of(callback):
    rule = getattr(callback, "access_rule", None)
    if rule:
        return rule
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:
        return None
    if getattr(view_class, "access_rule", None):
        return view_class.access_rule
    if issubclass(view_class, APIView):
        declared = any("permission_classes" in vars(k) for k in view_class.__mro__ if k is not APIView)
        return ("drf", tuple(c.__name__ for c in view_class.permission_classes)) if declared else None
    return None


def application_views():
    for route, name, callback in walk(get_resolver().url_patterns):
        if route.startswith("admin/"):
            continue
        yield route, name, callback


def test_it_finds_the_application_views():
    names = {name for _, name, _ in application_views()}
    assert {"home", "healthz", "accounts:login", "accounts:audit_episode"} <= names


def test_it_finds_no_view_without_an_access_rule():
    offenders = [
        f"/{route} ({name or callback.__qualname__})"
        for route, name, callback in application_views()
        if not rule_of(callback)
    ]

    assert not offenders, "views without an explicit access rule:\n  " + "\n  ".join(offenders)


def test_it_allows_only_the_known_pages_to_be_public():
    public = sorted(
        {name or route for route, name, callback in application_views() if rule_of(callback) == ("public",)}
    )

    assert set(public) <= PUBLIC, f"unexpected public views: {set(public) - PUBLIC}"


@pytest.mark.django_db
def test_it_leaves_the_admin_to_staff_only(client, alice):
    from tests.conftest import login

    assert admin.site.has_permission  # Django's own staff check guards every admin view
    response = login(client, alice).get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
