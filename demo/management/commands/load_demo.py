from django.conf import settings
from django.core.management.base import BaseCommand

from demo import org


class Command(BaseCommand):
    help = "Load the demo trust, users, pathways and episodes. Idempotent: a second run changes nothing."

    def handle(self, *args, **options):
        units = org.load_org()
        users = org.load_users(units)
        for step in _content_loaders():
            step(units=units, users={u.username: u for u in users}, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"Demo logins (password for all: {settings.DEMO_PASSWORD}):")
        for username, display_name, role, unit in org.DEMO_USERS:
            self.stdout.write(f"  {username:<13} {role.label:<14} {unit:<10} {display_name}")


def _content_loaders():
    """Further demo content, in dependency order (pathways, then episodes)."""
    loaders = []
    try:
        from demo import pathways as demo_pathways

        loaders.append(demo_pathways.load)
    except ImportError:
        pass
    from demo import sepsis as demo_sepsis  # SEPSIS-ED, and the real 4TU log when it is at hand

    loaders.append(demo_sepsis.load)
    try:
        from demo import episodes as demo_episodes

        loaders.append(demo_episodes.load)
    except ImportError:
        pass
    return loaders
