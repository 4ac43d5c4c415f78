from django.urls import path

from . import report_views, views

app_name = "costing"

urlpatterns = [
    # the pathway page's cost panel and provenance (HTMX fragments, full pages without JS)
    path("versions/<int:pk>/cost/", views.version_cost, name="version_cost"),
    path("versions/<int:old>/<int:new>/cost-delta/", views.version_cost_delta_view, name="version_cost_delta"),
    path("steps/<int:pk>/cost/", views.step_cost, name="step_cost"),
    # the episode page's and the variance page's cost lens (HTMX fragments, full pages without JS)
    path("episodes/<int:pk>/cost/", views.episode_cost, name="episode_cost"),
    path("variances/<int:pk>/cost/", views.variance_cost, name="variance_cost"),
    # resources and rates (finance edits; everyone reads)
    path("resources/", views.resource_list, name="resource_list"),
    path("resources/new/", views.resource_new, name="resource_new"),
    path("resources/<str:code>/", views.resource_detail, name="resource_detail"),
    path("resources/<str:code>/edit/", views.resource_edit, name="resource_edit"),
    path("resources/<str:code>/rates/new/", views.rate_edit, name="rate_new"),
    path("resources/<str:code>/rates/<int:financial_year>/", views.rate_edit, name="rate_edit"),
    path("rates/ccr/", views.ccr_calculator, name="ccr"),
    path("rates/import/", views.rate_import, name="rate_import"),
    # budgets: episodes per pathway per financial year
    path("budgets/", views.budget_list, name="budget_list"),
    path("budgets/new/", views.budget_edit, name="budget_new"),
    path("budgets/<int:pk>/", views.budget_edit, name="budget_edit"),
    path("budgets/<int:pk>/remove/", views.budget_remove, name="budget_remove"),
    # dashboards and report runs (costing/report_views.py)
    path("dashboard/", report_views.dashboard, name="dashboard"),
    path("reports/", report_views.report_list, name="report_list"),
    path("reports/run/", report_views.report_request, name="report_request"),
    path("reports/<int:pk>/", report_views.report_detail, name="report_detail"),
    path("reports/<int:pk>/status/", report_views.report_status, name="report_status"),
    path("reports/<int:pk>/export.xlsx", report_views.report_export_workbook, name="report_export_workbook"),
    path(
        "reports/<int:pk>/tables/<slug:table_key>.<str:fmt>",
        report_views.report_export_table,
        name="report_export_table",
    ),
    path("reports/<int:pk>/pathways/<str:code>/", report_views.drill_pathway, name="drill_pathway"),
    path("reports/<int:pk>/pathways/<str:code>/steps/<str:step>/", report_views.drill_step, name="drill_step"),
]
