from datetime import date

from django.core.management.base import BaseCommand, CommandError

from demo import generate, org


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
        self._prepare()
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

    def _prepare(self) -> None:
        """The demo trust, its users and pathways (idempotent), without the hand-made demo episodes."""
        units = org.load_org()
        users = {u.username: u for u in org.load_users(units)}
        for build in _pathway_loaders():
            build(units=units, users=users, stdout=self.stdout)

    def _progress(self, summary, total: int) -> None:
        share = summary.episodes / total if total else 1
        self.stdout.write(
            f"\r{summary.episodes:>9,} / {total:,} episodes ({share:4.0%}), {summary.events:,} events, "
            f"{summary.events_per_second:,.0f} events/s",
            ending="",
        )
        self.stdout.flush()


def _pathway_loaders():
    """The demo pathways: HIP-FRACTURE and TKR (demo/pathways.py) and SEPSIS-ED (without the 4TU log)."""
    loaders = []
    try:
        from demo import pathways as demo_pathways

        loaders.append(demo_pathways.load)
    except ImportError:
        pass
    loaders.append(_sepsis)
    return loaders


def _sepsis(*, units, users, stdout) -> None:
    from demo import sepsis

    actor = users.get("ed-lead")
    sepsis.build_pathway(owner_unit=units["ED"], actor=actor, resources=sepsis.load_resources(actor=actor))
