"""Helpers for the import tests: the SEPSIS-ED pathway, its mapping, small event logs written to disk.

``write_csv(path, cases)`` writes a CSV event log; ``cases`` is a list of
``(case_id, start, [(activity, minutes after start), ...])``. Times are in the
past (January 2025, UTC) so that nothing is refused as a future event.
"""

import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import quoteattr

from demo import sepsis
from variances.importers import import_events, parse_mapping

T0 = datetime(2025, 1, 10, 10, 0, tzinfo=UTC)
MAPPING_DOC = json.loads(sepsis.MAPPING_PATH.read_text(encoding="utf-8"))

# A complete, mostly on-time stay: IV antibiotics 80 minutes after screening (late by 20).
GOOD = [
    ("ER Registration", 0),
    ("ER Triage", 5),
    ("ER Sepsis Triage", 10),
    ("LacticAcid", 20),
    ("CRP", 25),
    ("Leucocytes", 25),
    ("IV Liquid", 30),
    ("IV Antibiotics", 90),
    ("Admission NC", 120),
    ("Release A", 3 * 24 * 60),
]
# Screening late (30 min), no antibiotics, no fluids, no release.
POOR = [
    ("ER Registration", 0),
    ("ER Triage", 10),
    ("ER Sepsis Triage", 30),
    ("LacticAcid", 40),
    ("CRP", 45),
    ("Leucocytes", 45),
]


def sepsis_version(org, actor=None):
    """SEPSIS-ED v1, published, owned by the ED (built by the demo loader)."""
    return sepsis.build_pathway(owner_unit=org["ED"], actor=actor)


def mapping(**changes):
    document = {**MAPPING_DOC, **changes}
    return parse_mapping(document, name="test-mapping.json")


def rows_for(cases, *, resource="A"):
    for case_id, start, events in cases:
        for activity, minutes in events:
            yield [case_id, activity, (start + timedelta(minutes=minutes)).isoformat(), resource]


def write_csv(path: Path, cases, *, header=("case_id", "activity", "timestamp", "resource"), rows=None) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows if rows is not None else rows_for(cases))
    return path


def write_xes(path: Path, cases, *, gz: bool = False, namespace: bool = False) -> Path:
    ns = ' xmlns="http://www.xes-standard.org/"' if namespace else ""
    lines = [f'<?xml version="1.0" encoding="UTF-8" ?>\n<log xes.version="1.0"{ns}>']
    for case_id, start, events in cases:
        lines.append(f'<trace><string key="concept:name" value={quoteattr(case_id)}/>')
        for activity, minutes in events:
            at = (start + timedelta(minutes=minutes)).isoformat()
            lines.append(
                f'<event><string key="concept:name" value={quoteattr(activity)}/>'
                f'<date key="time:timestamp" value="{at}"/><string key="org:group" value="A"/>'
                '<string key="lifecycle:transition" value="complete"/></event>'
            )
        lines.append("</trace>")
    lines.append("</log>\n")
    data = "\n".join(lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def run(path, org, **options):
    """Import ``path`` onto SEPSIS-ED in the ED with the 4TU mapping (or ``mapping=``)."""
    options.setdefault("org_unit", org["ED"])
    return import_events(path, mapping=options.pop("mapping", None) or mapping(), pathway_code="SEPSIS-ED", **options)
