from django.conf import settings
from django.core.management.base import BaseCommand

from costing.models import ReportRun
from costing.tasks import nightly_reports
from demo import episodes, org, pathways, sepsis


class Command(BaseCommand):
    help = "Load the demo trust, users, pathways, episodes and reports. Idempotent: a second run changes nothing."

    def handle(self, *args, **options):
        units = org.load_org()
        users = {u.username: u for u in org.load_users(units)}
        # In dependency order: pathways, SEPSIS-ED (and the real 4TU log when it is at hand), episodes.
        for load in (pathways.load, sepsis.load, episodes.load):
            load(units=units, users=users, stdout=self.stdout)
        if not ReportRun.objects.exists():
            # The nightly run, now, so that the dashboards open with figures (in-process without a broker).
            requested = nightly_reports()
            self.stdout.write(f"Requested {requested} reports (rolling twelve months for every unit).")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"Demo logins (password for all: {settings.DEMO_PASSWORD}):")
        for username, display_name, role, unit in org.DEMO_USERS:
            self.stdout.write(f"  {username:<13} {role.label:<14} {unit:<10} {display_name}")
