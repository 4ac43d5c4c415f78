from django.urls import path

from . import views

app_name = "pathways"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("new/", views.pathway_new, name="pathway_new"),
    path("import/", views.pathway_import, name="pathway_import"),
    # authoring a draft (ids: stages, steps and planned resources are version-specific rows)
    path("stages/<int:pk>/edit/", views.stage_edit, name="stage_edit"),
    path("stages/<int:pk>/move/", views.stage_move, name="stage_move"),
    path("stages/<int:pk>/remove/", views.stage_remove, name="stage_remove"),
    path("stages/<int:pk>/steps/new/", views.step_add, name="step_add"),
    path("steps/<int:pk>/edit/", views.step_edit, name="step_edit"),
    path("steps/<int:pk>/move/", views.step_move, name="step_move"),
    path("steps/<int:pk>/remove/", views.step_remove, name="step_remove"),
    path("steps/<int:pk>/resources/new/", views.planned_add, name="planned_add"),
    path("planned/<int:pk>/edit/", views.planned_edit, name="planned_edit"),
    path("planned/<int:pk>/remove/", views.planned_remove, name="planned_remove"),
    # a pathway and its versions, by code
    path("<str:code>/", views.pathway_detail, name="pathway_detail"),
    path("<str:code>/edit/", views.pathway_edit, name="pathway_edit"),
    path("<str:code>/draft/", views.version_draft, name="version_draft"),
    path("<str:code>/v<int:number>/", views.version_detail, name="version_detail"),
    path("<str:code>/v<int:number>/plan/", views.version_plan, name="version_plan"),
    path("<str:code>/v<int:number>/export.json", views.version_export_json, name="version_export"),
    path("<str:code>/v<int:number>/diff/<int:other>/", views.version_diff_view, name="version_diff"),
    path("<str:code>/v<int:number>/publish/", views.version_publish, name="version_publish"),
    path("<str:code>/v<int:number>/retire/", views.version_retire, name="version_retire"),
    path("<str:code>/v<int:number>/stages/new/", views.stage_add, name="stage_add"),
]
