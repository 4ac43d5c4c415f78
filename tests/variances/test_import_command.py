"""``manage.py import_events``: the summary an operator reads, errors that say what to fix."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from demo import sepsis
from tests.variances.importing import GOOD, POOR, T0, sepsis_version, write_csv
from variances.importers.readers import Problem
from variances.management.commands.import_events import ProgressBar
from variances.models import Episode

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(org, tmp_path):
    sepsis_version(org)
    return write_csv(tmp_path / "ed-export.csv", [("A", T0, GOOD), ("B", T0, POOR)])


def import_events(*args, **options):
    out = io.StringIO()
    call_command("import_events", *args, stdout=out, **options)
    return out.getvalue()


def test_it_imports_and_prints_the_summary(log):
    output = import_events(str(log), pathway="SEPSIS-ED", mapping=str(sepsis.MAPPING_PATH), org_unit="ED", closed=True)

    lines = output.splitlines()
    assert lines[0] == "Imported."
    assert "File: ed-export.csv (CSV), source '4tu-sepsis-cases'" in lines
    assert "Pathway: SEPSIS-ED v1, org unit ED" in lines
    assert "Cases: 2 read, 2 imported, 0 skipped for problems" in lines
    assert f"Events: {len(GOOD) + len(POOR)} read, {len(GOOD) + len(POOR)} new, 0 already imported, " in output
    assert "Episodes: 2 created, 0 updated, 0 unchanged" in lines
    assert "Variances detected: 5 (delay 2, omission 3)" in lines
    assert lines[-1].startswith("Time: ") and lines[-1].endswith(" events per second")
    assert Episode.objects.filter(org_unit__code="ED", status="completed").count() == 2


def test_the_org_unit_defaults_to_the_trust(log):
    import_events(str(log), pathway="SEPSIS-ED", mapping=str(sepsis.MAPPING_PATH))

    assert set(Episode.objects.values_list("org_unit__code", flat=True)) == {"RCH"}


def test_a_dry_run_saves_nothing(log):
    output = import_events(str(log), pathway="SEPSIS-ED", mapping=str(sepsis.MAPPING_PATH), dry_run=True)

    assert output.startswith("Dry run: nothing was saved.")
    assert "Episodes: 2 created" in output
    assert not Episode.objects.exists()


def test_a_bad_file_fails_lists_its_problems_and_changes_nothing(org, tmp_path):
    sepsis_version(org)
    path = write_csv(tmp_path / "bad.csv", None, rows=[["A", "ER Triage", "soon", ""], ["B", "ER Triage", "", ""]])

    out = io.StringIO()
    with pytest.raises(CommandError, match=r"2 problems in the file; nothing was imported"):
        call_command("import_events", str(path), pathway="SEPSIS-ED", mapping=str(sepsis.MAPPING_PATH), stdout=out)

    assert "  line 2: 'soon' is not an ISO 8601 timestamp" in out.getvalue()
    assert "  line 3: the timestamp is empty" in out.getvalue()
    assert not Episode.objects.exists()


def test_a_file_stopped_by_one_bad_case_does_not_count_the_others_as_imported(org, tmp_path):
    sepsis_version(org)
    path = write_csv(tmp_path / "one-bad.csv", [("A", T0, GOOD), ("B", T0, POOR)])
    with path.open("a", encoding="utf-8") as f:
        f.write("C,ER Triage,soon,\n")

    out = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_events", str(path), pathway="SEPSIS-ED", mapping=str(sepsis.MAPPING_PATH), stdout=out)

    lines = out.getvalue().splitlines()
    assert (
        "Cases: 3 cases read; 1 case has problems, so nothing was imported (use --skip-bad to import the other 2)"
        in lines
    )
    assert any(line.startswith("Events: ") and "read, none saved;" in line for line in lines), lines
    assert not any(line.startswith(("Episodes:", "Variances detected:")) for line in lines), lines
    assert not Episode.objects.exists()


def test_every_problem_of_a_mapping_is_listed_at_once(log, tmp_path):
    document = json.loads(sepsis.MAPPING_PATH.read_text(encoding="utf-8"))
    document["foo"] = 1
    first = next(iter(document["steps"]))
    document["steps"][first] = "TRIAGEX"
    mapping = tmp_path / "bad-map.json"
    mapping.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(CommandError) as caught:
        import_events(str(log), pathway="SEPSIS-ED", mapping=str(mapping))

    message = str(caught.value)
    assert message.startswith("The mapping bad-map.json cannot be used:")
    assert "'foo'" in message and "TRIAGEX" in message  # the file's problem and the pathway's, in one go
    assert not Episode.objects.exists()

    with pytest.raises(CommandError) as caught:
        import_events(str(log), pathway="NOPE", mapping=str(mapping))
    # No pathway to check the steps against: that, and what is wrong with the file itself.
    assert str(caught.value).startswith("There is no pathway with the code NOPE.\nThe mapping bad-map.json cannot")
    assert "'foo'" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pathway": "NOPE"}, "There is no pathway with the code NOPE"),
        ({"org_unit": "WARD-99"}, "There is no org unit with the code WARD-99"),
        ({"mapping": "missing.json"}, "The mapping missing.json cannot be used:\n  - there is no file missing.json"),
    ],
)
def test_it_says_what_is_wrong_before_reading_anything(log, options, message):
    arguments = {"pathway": "SEPSIS-ED", "mapping": str(sepsis.MAPPING_PATH), **options}

    with pytest.raises(CommandError) as caught:
        import_events(str(log), **arguments)

    assert message in str(caught.value)


def test_a_file_that_is_not_an_event_log_is_refused(org, tmp_path):
    sepsis_version(org)
    path = tmp_path / "notes.csv"
    path.write_text("name,ward\nsomeone,7\n", encoding="utf-8")

    with pytest.raises(CommandError, match="notes.csv: line 1: the header has no case_id, activity, timestamp"):
        import_events(str(path), pathway="SEPSIS-ED", mapping=str(sepsis.MAPPING_PATH))


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_shows_on_a_terminal_only():
    from variances.importers import ImportSummary

    summary = ImportSummary(cases_read=1200, events_read=17000)
    terminal, redirected = FakeTerminal(), io.StringIO()

    for stream in (terminal, redirected):
        bar = ProgressBar(stream)
        bar(50, 200, summary)
        bar.finish()

    assert terminal.getvalue().startswith("\r[#######.......................]  25%  1,200 cases  17,000 events")
    assert terminal.getvalue().endswith("\n")
    assert redirected.getvalue() == ""
    assert str(Problem("line 2", "x")) == "line 2: x"
