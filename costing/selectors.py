from .models import ReportRun


def home_panel(user) -> dict:
    latest = ReportRun.objects.filter(status=ReportRun.Status.SUCCEEDED).order_by("-finished_at").first()
    return {"latest_report": latest}
