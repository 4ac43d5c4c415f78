"""The REST API under /api/v1/: each app's endpoints live in its api.py (and fhir.py).

Endpoints that show another app's figures get them wired in here, so that the
apps keep importing one way (accounts <- pathways <- variances <- costing): the
pathway detail shows the expected cost and the episode detail the expected and
actual cost that ``costing`` computes.
"""

from django.urls import path, re_path

from accounts import api as accounts_api
from accounts.api_support import endpoint_not_found
from config import fhir
from costing import api as costing_api
from pathways import api as pathways_api
from pathways import fhir as pathways_fhir
from variances import api as variances_api
from variances import fhir as variances_fhir

standard_cost = {"standard_cost": costing_api.pathway_standard_cost}
episode_costs = {"cost_summary": costing_api.episode_costs}

urlpatterns = [
    path("schema/", accounts_api.SchemaView.as_view(), name="api-schema"),
    path("docs/", accounts_api.DocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("org-units/", accounts_api.OrgUnitList.as_view(), name="api-org-units"),
    path("tokens/", accounts_api.ApiTokenList.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/revoke/", accounts_api.ApiTokenRevoke.as_view(), name="api-token-revoke"),
    path("pathways/", pathways_api.PathwayList.as_view(), name="api-pathways"),
    path("pathways/<str:code>/", pathways_api.PathwayDetail.as_view(**standard_cost), name="api-pathway"),
    path(
        "pathways/<str:code>/versions/<int:number>/",
        pathways_api.PathwayVersionDetail.as_view(**standard_cost),
        name="api-pathway-version",
    ),
    path("episodes/", variances_api.EpisodeListCreate.as_view(**episode_costs), name="api-episodes"),
    path("episodes/<int:pk>/", variances_api.EpisodeDetail.as_view(**episode_costs), name="api-episode"),
    path("episodes/<int:pk>/close/", variances_api.EpisodeClose.as_view(**episode_costs), name="api-episode-close"),
    path(
        "episodes/<int:pk>/outcomes/",
        variances_api.EpisodeOutcomes.as_view(**episode_costs),
        name="api-episode-outcomes",
    ),
    path("episodes/<int:pk>/events/", variances_api.EpisodeEvents.as_view(), name="api-episode-events"),
    path("variances/", variances_api.VarianceListCreate.as_view(), name="api-variances"),
    path("variances/<int:pk>/", variances_api.VarianceDetail.as_view(), name="api-variance"),
    path("variances/<int:pk>/history/", variances_api.VarianceHistory.as_view(), name="api-variance-history"),
    path("variances/<int:pk>/withdraw/", variances_api.VarianceWithdraw.as_view(), name="api-variance-withdraw"),
    path("reason-codes/", variances_api.ReasonCodeList.as_view(), name="api-reason-codes"),
    path("cost-rates/", costing_api.CostRateListCreate.as_view(), name="api-cost-rates"),
    path("cost-rates/<int:pk>/", costing_api.CostRateDetail.as_view(), name="api-cost-rate"),
    path("reports/", costing_api.ReportRequest.as_view(), name="api-reports"),
    path("reports/<int:pk>/", costing_api.ReportRunDetail.as_view(), name="api-report"),
    # The FHIR base is /api/v1/fhir: its CapabilityStatement lists the FHIR routes below it.
    path("fhir/metadata", fhir.CapabilityStatementView.as_view(), name="api-fhir-metadata"),
    path("fhir/PlanDefinition/<str:code>", pathways_fhir.PlanDefinitionView.as_view(), name="api-fhir-plandefinition"),
    path("fhir/CarePlan/<int:pk>", variances_fhir.CarePlanView.as_view(), name="api-fhir-careplan"),
    # Anything else under /api/v1/ answers 404 in problem+json, not the HTML error page.
    re_path(r"^.*$", endpoint_not_found),
]
