from datetime import date

from django.core.management.base import BaseCommand, CommandError

from demo import generate


class Command(BaseCommand):
    help = (
        "Generate N synthetic episodes on the demo pathways (years of arrivals, step timings, variances, "
        "costs and outcomes), written in bulk. Deterministic for a seed and cutoff date."
    )

    def add_arguments(self, parser):
        parser.add_argument("--episodes", type=int, required=True, help="How many episodes to generate.")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1); one run per seed.")
        parser.add_argument(
            "--until",
            type=date.fromisoformat,
            default=None,
            help="Cutoff date YYYY-MM-DD (default today): everything happened before its midnight.",
        )
        parser.add_argument("--years", type=int, default=5, help="Years of arrivals before the cutoff (default 5).")
        parser.add_argument(
            "--batch-events", type=int, default=generate.BATCH_EVENTS, help="Events written per transaction."
        )

    def handle(self, *args, episodes, seed, until, years, batch_events, **options):
        if years < 1:
            raise CommandError("--years must be at least 1.")
        generate.prepare_demo(stdout=self.stdout)
        try:
            summary = generate.generate(
                episodes=episodes,
                seed=seed,
                until=until,
                years=years,
                batch_events=batch_events,
                progress=self._progress,
            )
        except generate.GenerationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("")
        for line in summary.lines():
            self.stdout.write(line)

    def _progress(self, summary, total: int) -> None:
        share = summary.episodes / total if total else 1
        self.stdout.write(
            f"\r{summary.episodes:>9,} / {total:,} episodes ({share:4.0%}), {summary.events:,} events, "
            f"{summary.events_per_second:,.0f} events/s",
            ending="",
        )
        self.stdout.flush()
