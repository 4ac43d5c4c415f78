"""``manage.py import_events PATH --pathway CODE --mapping MAPPING.json``: bulk import of event data.

Reads XES (plain or .gz) or CSV (columns ``case_id, activity, timestamp``,
optional ``resource, cost``), one episode per case, then runs detection on
every imported episode. See README "Importing hospital event data".
"""

import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from accounts.models import OrgUnit
from variances.importers import ImportFailed, MappingError, import_events, load_mapping
from variances.importers.loader import resolve


class ProgressBar:
    """A one-line progress bar on a terminal; silent when output is redirected."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int, summary) -> None:
        if not self.enabled:
            return
        share = done / total if total else 1.0
        filled = int(self.WIDTH * share)
        elapsed = time.perf_counter() - self.started
        rate = summary.events_read / elapsed if elapsed > 0 else 0
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%}  "
            f"{summary.cases_read:,} cases  {summary.events_read:,} events  {rate:,.0f}/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = (
        "Import hospital event data (XES or CSV) onto a pathway: one episode per case, events in time order, "
        "then detection. Idempotent: importing the same file again creates nothing new."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="XES (.xes, .xes.gz) or CSV (.csv, .csv.gz) event log")
        parser.add_argument("--pathway", required=True, help="code of the pathway, e.g. SEPSIS-ED")
        parser.add_argument("--mapping", required=True, help="mapping file (JSON), e.g. data/mappings/sepsis-4tu.json")
        parser.add_argument("--org-unit", default="", help="code of the org unit of the episodes (default: the trust)")
        parser.add_argument("--closed", action="store_true", help="close each episode at its last event")
        parser.add_argument("--dry-run", action="store_true", help="do everything, report, then save nothing")
        parser.add_argument(
            "--skip-bad",
            action="store_true",
            help="import the good cases of a file with problems (a case with any bad row is left out whole)",
        )

    def handle(self, *args, **options):
        unit = None
        if options["org_unit"]:
            unit = OrgUnit.objects.filter(code=options["org_unit"]).first()
            if unit is None:
                raise CommandError(f"There is no org unit with the code {options['org_unit']}.")
        try:
            mapping = load_mapping(options["mapping"])
        except MappingError as exc:
            if exc.mapping is None:  # not a JSON object: nothing more to check
                raise CommandError(str(exc)) from exc
            try:  # the pathway's problems (unknown step codes, resources) in the same list
                resolve(exc.mapping, pathway_code=options["pathway"], problems=exc.problems)
            except ImportFailed as more:  # no such pathway: that, and the file's own problems
                raise CommandError(f"{more}\n{exc}") from more
            except MappingError as more:
                raise CommandError(str(more)) from more
            raise CommandError(str(exc)) from exc
        bar = ProgressBar(sys.stderr)
        try:
            summary = import_events(
                options["path"],
                mapping=mapping,
                pathway_code=options["pathway"],
                org_unit=unit,
                closed=options["closed"],
                dry_run=options["dry_run"],
                skip_bad=options["skip_bad"],
                progress=bar,
            )
        except (ImportFailed, MappingError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.finish()
        lines = summary.lines()
        style = self.style.SUCCESS if summary.committed or summary.dry_run else self.style.ERROR
        self.stdout.write(style(lines[0]))
        for line in lines[1:]:
            self.stdout.write(line)
        if summary.problem_count and not options["skip_bad"]:
            raise CommandError(
                f"{summary.problem_count} problem{pluralize(summary.problem_count)} in the file; nothing was imported."
            )
