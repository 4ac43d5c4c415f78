from django.contrib import admin
from django.urls import include, path, re_path

from accounts.api_support import endpoint_not_found

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("pathways/", include("pathways.urls")),
    path("variances/", include("variances.urls")),
    path("costing/", include("costing.urls")),
    path("api/v1/", include("config.api_urls")),
    # Any other path under /api/ (a version that does not exist, /api/ itself) answers an
    # integrator's client in problem+json too, not with the site's HTML page.
    re_path(r"^api/", endpoint_not_found),
    path("admin/", admin.site.urls),
]

handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
