"""The REST API under /api/v1/: each app's endpoints live in its api.py (and fhir.py).

Endpoints that show another app's figures get them wired in here, so that the
apps keep importing one way (accounts <- pathways <- variances <- costing):
the pathway detail shows the expected cost that ``costing`` computes.
"""

from django.urls import path, re_path

from accounts import api as accounts_api
from accounts.api_support import endpoint_not_found

urlpatterns = [
    path("schema/", accounts_api.SchemaView.as_view(), name="api-schema"),
    path("docs/", accounts_api.DocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("org-units/", accounts_api.OrgUnitList.as_view(), name="api-org-units"),
    path("tokens/", accounts_api.ApiTokenList.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/revoke/", accounts_api.ApiTokenRevoke.as_view(), name="api-token-revoke"),
    # Anything else under /api/v1/ answers 404 in problem+json, not the HTML error page.
    re_path(r"^.*$", endpoint_not_found),
]
