"""Proof on real data: the whole 4TU Sepsis Cases log, imported and checked against its own figures.

Mannhardt, F. (2016). Sepsis Cases - Event Log. 4TU.ResearchData.
DOI 10.4121/uuid:915d2bfb-7e84-49ad-a286-dc35f063a460 (not in the repository:
found through SHARED_DATA_DIR, set by .ci/run, or ../shared/data).

The expected figures are computed here, independently of CommonPath's reader,
mapping and detector, from the raw file with the standard library only (gzip
and ElementTree.iterparse), straight from issue #7's table: for each timed
step, how many patients had it on time, late, early, or not at all.
"""

import csv
import gzip
import xml.etree.ElementTree as ET  # noqa: S405 - reads the known public 4TU file
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db.models import Count

from demo import sepsis
from tests.conftest import require
from tests.variances.importing import mapping, sepsis_version
from variances.adherence import step_adherence
from variances.importers import import_events
from variances.models import Episode, StepEvent, Variance

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Issue #7: source activity -> step code
STEP_OF = {
    "ER Registration": "ER-REGISTRATION",
    "ER Triage": "ER-TRIAGE",
    "ER Sepsis Triage": "SEPSIS-TRIAGE",
    "LacticAcid": "LACTATE",
    "CRP": "BLOODS",
    "Leucocytes": "BLOODS",
    "IV Antibiotics": "IV-ANTIBIOTICS",
    "IV Liquid": "IV-FLUIDS",
    "Admission NC": "ADMISSION",
    "Admission IC": "ADMISSION",
    "Release A": "DISCHARGE",
    "Release B": "DISCHARGE",
    "Release C": "DISCHARGE",
    "Release D": "DISCHARGE",
    "Release E": "DISCHARGE",
}
RETURN = "Return ER"
# Issue #7's timed steps: code -> (anchor step, or None for the episode start; min; max; mandatory)
TIMED = {
    "ER-TRIAGE": ("ER-REGISTRATION", 0, 15, True),
    "SEPSIS-TRIAGE": ("ER-REGISTRATION", 0, 15, True),
    "LACTATE": ("SEPSIS-TRIAGE", 0, 60, True),
    "BLOODS": ("SEPSIS-TRIAGE", 0, 60, True),
    "IV-ANTIBIOTICS": ("SEPSIS-TRIAGE", 0, 60, True),
    "IV-FLUIDS": ("SEPSIS-TRIAGE", 0, 60, True),
    "ADMISSION": ("SEPSIS-TRIAGE", 0, 240, False),
    "DISCHARGE": (None, 0, None, True),
}
TYPE_OF = {"late": "delay", "early": "early", "missing": "omission"}


def log_path() -> Path:
    path = sepsis.sepsis_log_path()
    require(path.exists(), f"the 4TU Sepsis Cases log is not at {path}")
    return path


def raw_traces(path: Path):
    """``(case id, [(time, activity), ...])`` per trace, straight from the XML."""
    with gzip.open(path) as f:
        for _action, element in ET.iterparse(f):  # noqa: S314 - a known public file
            if element.tag != "trace":
                continue
            case_id = next(c.get("value") for c in element if c.get("key") == "concept:name")
            events = []
            for event in element.iter("event"):
                values = {child.get("key"): child.get("value") for child in event}
                events.append((datetime.fromisoformat(values["time:timestamp"]), values["concept:name"]))
            element.clear()
            yield case_id, events


def expected_figures(path: Path) -> dict:
    """Per timed step: patients on time, late, early, missing (and not assessable: anchor never happened)."""
    figures = {code: Counter() for code in TIMED}
    patients = events = readmitted = 0
    for _case_id, trace in raw_traces(path):
        patients += 1
        care = sorted(((at, activity) for at, activity in trace if activity != RETURN), key=lambda e: e[0])
        events += len(care)
        start, end = care[0][0], care[-1][0]
        if any(activity == RETURN and at <= end + timedelta(days=30) for at, activity in trace):
            readmitted += 1
        first = {}
        for at, activity in care:
            first.setdefault(STEP_OF[activity], at)
        for code, (anchor, low, high, mandatory) in TIMED.items():
            done = first.get(code)
            if done is None:
                if mandatory:
                    figures[code]["missing"] += 1
                continue
            base = start if anchor is None else first.get(anchor)
            if base is None:
                figures[code]["not assessed"] += 1
            elif done < base + timedelta(minutes=low):
                figures[code]["early"] += 1
            elif high is not None and done > base + timedelta(minutes=high):
                figures[code]["late"] += 1
            else:
                figures[code]["on time"] += 1
    return {"patients": patients, "events": events, "readmitted": readmitted, "steps": figures}


@pytest.fixture(scope="module")
def expected():
    return expected_figures(log_path())


def detected(episodes) -> dict:
    rows = (
        Variance.objects.current()
        .filter(episode__in=episodes)
        .values("step__code", "variance_type")
        .annotate(n=Count("episode", distinct=True))
    )
    return {(r["step__code"], r["variance_type"]): r["n"] for r in rows}


def check(expected, episodes, rows) -> None:
    assert episodes.count() == expected["patients"] == 1050
    assert StepEvent.objects.filter(episode__in=episodes).count() == expected["events"] == 15214 - 294
    assert episodes.filter(readmitted_30d=True).count() == expected["readmitted"]
    found = detected(episodes)
    for code, counts in expected["steps"].items():
        for outcome, variance_type in TYPE_OF.items():
            assert found.get((code, variance_type), 0) == counts[outcome], (code, outcome)
    assert not [key for key in found if key[0] not in TIMED]  # nothing on untimed steps, no additions
    table = {row.code: row for row in rows}
    for code, counts in expected["steps"].items():
        row = table[code]
        assert (row.on_time, row.late, row.early, row.missing, row.not_assessed) == (
            counts["on time"],
            counts["late"],
            counts["early"],
            counts["missing"],
            counts["not assessed"],
        ), code


def test_the_whole_log_imports_and_detection_matches_the_raw_file(org, expected):
    sepsis_version(org)
    path = log_path()

    summary = import_events(path, mapping=mapping(), pathway_code="SEPSIS-ED", org_unit=org["ED"], closed=True)

    assert summary.committed and summary.problem_count == 0
    assert (summary.cases_read, summary.events_read, summary.outcome_events) == (1050, 15214, 294)
    episodes = Episode.objects.filter(org_unit=org["ED"])
    rows = step_adherence("SEPSIS-ED")
    check(expected, episodes, rows)
    antibiotics = expected["steps"]["IV-ANTIBIOTICS"]
    assert next(r for r in rows if r.code == "IV-ANTIBIOTICS").sentence == (
        f"IV antibiotics within 1 hour of sepsis screening: {antibiotics['on time']} of "
        f"{antibiotics['on time'] + antibiotics['late'] + antibiotics['early'] + antibiotics['missing']}"
    )

    again = import_events(path, mapping=mapping(), pathway_code="SEPSIS-ED", org_unit=org["ED"], closed=True)

    assert (again.episodes_created, again.events_created, sum(again.variances.values())) == (0, 0, 0)
    assert again.episodes_unchanged == 1050


def test_the_same_log_as_csv_gives_the_same_figures(org, expected, tmp_path):
    sepsis_version(org)
    csv_path = tmp_path / "sepsis.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["case_id", "activity", "timestamp", "resource"])
        for case_id, trace in raw_traces(log_path()):
            for at, activity in trace:
                writer.writerow([case_id, activity, at.isoformat(), ""])

    summary = import_events(
        csv_path,
        mapping=mapping(source="4tu-sepsis-csv"),
        pathway_code="SEPSIS-ED",
        org_unit=org["EM"],
        closed=True,
    )

    assert summary.committed and summary.format == "csv"
    check(expected, Episode.objects.filter(org_unit=org["EM"]), step_adherence("SEPSIS-ED", [org["EM"].pk]))
