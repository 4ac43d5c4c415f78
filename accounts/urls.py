from django.urls import path

from . import audit_views, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("audit/", audit_views.audit_home, name="audit_home"),
    path("audit/users/<str:username>/", audit_views.audit_user, name="audit_user"),
    path("audit/episodes/<str:episode_ref>/", audit_views.audit_episode, name="audit_episode"),
    path("audit/checks/", audit_views.audit_check_create, name="audit_check_create"),
]
