from django.urls import path

from . import import_views, views

app_name = "variances"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("episodes/", views.episode_list, name="episode_list"),
    path("episodes/new/", views.episode_start, name="episode_start"),
    path("episodes/<int:pk>/", views.episode_detail, name="episode_detail"),
    path("episodes/<int:pk>/close/", views.episode_close, name="episode_close"),
    path("episodes/<int:pk>/exit/", views.episode_exit, name="episode_exit"),
    path("episodes/<int:pk>/outcomes/", views.episode_outcomes, name="episode_outcomes"),
    path("episodes/<int:pk>/events/new/", views.event_record, name="event_record"),
    path("episodes/<int:pk>/variances/new/", views.variance_record, name="variance_record"),
    path("review/", views.review_queue, name="review_queue"),
    path("<int:pk>/", views.variance_detail, name="variance_detail"),
    path("<int:pk>/explain/", views.variance_explain, name="variance_explain"),
    path("<int:pk>/amend/", views.variance_amend, name="variance_amend"),
    path("<int:pk>/withdraw/", views.variance_withdraw, name="variance_withdraw"),
    path("<int:pk>/review/", views.variance_review, name="variance_review"),
    # Import of hospital event data (admins; variances/import_views.py)
    path("imports/", import_views.import_list, name="import_list"),
    path("imports/<int:pk>/", import_views.import_detail, name="import_detail"),
]
