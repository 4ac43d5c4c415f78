"""Reads of report runs that pages share (the home page, dashboards)."""

from django.db.models import Case, IntegerField, Subquery, Value, When

from accounts.permissions import ALL_ROLES, unit_ids_for, units_for

from .models import ReportRun


def runs_for(user):
    """Report runs on units within the user's scope (whoever requested them)."""
    return ReportRun.objects.filter(org_unit_id__in=unit_ids_for(user, *ALL_ROLES))


def home_panel(user) -> dict:
    """The latest report on the unit the user's dashboard opens on (their widest), else the latest they may read.

    A trust-wide finance lead was told about whichever division's report ran last. One query.
    """
    home = units_for(user, *ALL_ROLES).order_by("path").values("pk")[:1]
    latest = (
        runs_for(user)
        .filter(status=ReportRun.Status.SUCCEEDED)
        .select_related("org_unit")
        .annotate(
            own=Case(When(org_unit_id=Subquery(home), then=Value(1)), default=Value(0), output_field=IntegerField())
        )
        .order_by("-own", "-finished_at", "-id")
        .first()
    )
    return {"latest_report": latest}
