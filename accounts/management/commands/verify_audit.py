import time

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import latest_anchor, verify_chain


class Command(BaseCommand):
    help = (
        "Verify the hash chain of the audit trail. Exits 0 when intact; otherwise exits 1 and "
        "names the first event that was altered, deleted, inserted or reordered."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-anchor",
            action="store_true",
            help="Do not require the end of the chain seen by the last passed nightly check to be still there.",
        )

    def handle(self, *args, **options):
        started = time.perf_counter()
        count, bad, reason = verify_chain(anchor=None if options["no_anchor"] else latest_anchor())
        seconds = time.perf_counter() - started
        if bad is not None:
            if bad._state.adding:  # the stand-in for an event that is gone
                where = f"event {bad.pk}"
            else:
                where = (
                    f"event {bad.pk} ({bad.at:%Y-%m-%d %H:%M:%S} UTC, action {bad.action!r}, "
                    f"by {bad.actor_name or 'no user'}), the {ordinal(count)} event checked"
                )
            raise CommandError(f"Audit chain broken at {where}: {reason}.", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {count} events verified in {seconds:.2f} s."))


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"
