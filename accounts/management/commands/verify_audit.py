import time

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Verify the hash chain of the audit trail. Exits 0 when intact; otherwise exits 1 and "
        "names the first event that was altered, deleted, inserted or reordered."
    )

    def handle(self, *args, **options):
        started = time.perf_counter()
        count, bad, reason = verify_chain()
        seconds = time.perf_counter() - started
        if bad is not None:
            raise CommandError(
                f"Audit chain broken at event {bad.pk} ({bad.at:%Y-%m-%d %H:%M:%S} UTC, action {bad.action!r}, "
                f"by {bad.actor_name or 'no user'}), the {ordinal(count)} event checked: {reason}.",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {count} events verified in {seconds:.2f} s."))


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"
