"""Reads of report runs that pages share (the home page, dashboards)."""

from accounts.permissions import ALL_ROLES, unit_ids_for

from .models import ReportRun


def runs_for(user):
    """Report runs on units within the user's scope (whoever requested them)."""
    return ReportRun.objects.filter(org_unit_id__in=unit_ids_for(user, *ALL_ROLES))


def home_panel(user) -> dict:
    """The most recently computed report the user may read (one query)."""
    latest = (
        runs_for(user)
        .filter(status=ReportRun.Status.SUCCEEDED)
        .select_related("org_unit")
        .order_by("-finished_at", "-id")
        .first()
    )
    return {"latest_report": latest}
