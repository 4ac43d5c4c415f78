"""Streaming readers: XES (plain, gzip, namespaced) and CSV, problems with their place, constant memory."""

import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.variances.importing import GOOD, T0, write_csv, write_xes
from variances.importers.readers import OrphanProblem, SourceFormatError, open_source, read_source


def read(path, **kwargs):
    opened = open_source(path)
    try:
        return opened.format, list(read_source(opened, **kwargs))
    finally:
        opened.close()


@pytest.mark.parametrize(
    ("name", "gz", "namespace"),
    [("log.xes", False, False), ("log.xes.gz", True, False), ("log.xes", False, True), ("log.xml.gz", True, True)],
)
def test_xes_traces_become_cases_with_their_events(tmp_path, name, gz, namespace):
    path = write_xes(tmp_path / name, [("A", T0, GOOD[:3]), ("B", T0, GOOD[:1])], gz=gz, namespace=namespace)

    fmt, cases = read(path)

    assert fmt == "xes"
    assert [(c.case_id, len(c.events), c.problems) for c in cases] == [("A", 3, []), ("B", 1, [])]
    triage = cases[0].events[2]
    assert (triage.activity, triage.timestamp, triage.resource) == ("ER Sepsis Triage", T0 + timedelta(minutes=10), "A")


def test_gzip_is_recognised_by_its_content_and_the_format_by_sniffing(tmp_path):
    path = write_xes(tmp_path / "export.dat", [("A", T0, GOOD[:2])], gz=True)

    fmt, cases = read(path)

    assert fmt == "xes" and len(cases[0].events) == 2


def test_xes_reads_only_the_events_own_attributes_and_keeps_no_patient_details(tmp_path):
    path = tmp_path / "log.xes"
    path.write_text(
        """<?xml version="1.0"?>
<log xes.version="1.0">
  <string key="concept:name" value="the log"/>
  <int key="meta:count" value="2"><int key="ER Triage" value="1"/></int>
  <trace>
    <string key="concept:name" value="XA"/>
    <int key="Age" value="85"/>
    <event>
      <string key="concept:name" value="ER Registration"/>
      <date key="time:timestamp" value="2014-10-22T11:15:41.000+02:00"/>
      <string key="org:resource" value="Nurse 7"/>
      <string key="org:group" value="A"/>
      <float key="cost:total" value="12.50"/>
      <string key="Diagnose" value="something private"/>
      <list key="tags"><string key="concept:name" value="nested, not the activity"/></list>
    </event>
  </trace>
</log>""",
        encoding="utf-8",
    )

    _fmt, [case] = read(path)

    assert case.case_id == "XA"
    [event] = case.events
    assert (event.activity, event.resource, event.cost) == ("ER Registration", "Nurse 7", Decimal("12.50"))
    assert event.timestamp == datetime(2014, 10, 22, 9, 15, 41, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(hours=2)
    assert not hasattr(case, "attributes")  # nothing but case id and events is read


def test_xes_problems_say_which_trace_and_event(tmp_path):
    path = tmp_path / "log.xes"
    path.write_text(
        """<log>
<trace><string key="concept:name" value="A"/>
  <event><string key="concept:name" value="ER Registration"/></event>
  <event><date key="time:timestamp" value="2014-10-22T11:15:41+02:00"/></event>
  <event><string key="concept:name" value="ER Triage"/><date key="time:timestamp" value="2014-10-22T11:15:41"/></event>
</trace>
<trace><event><string key="concept:name" value="X"/><date key="time:timestamp" value="2014-10-22T11:15:41Z"/></event></trace>
</log>""",
        encoding="utf-8",
    )

    _fmt, cases = read(path)

    assert [str(p) for p in cases[0].problems] == [
        "trace 1, event 1: the event has no time:timestamp",
        "trace 1, event 2: the event has no concept:name (activity)",
        "trace 1, event 3: the timestamp '2014-10-22T11:15:41' has no UTC offset; add one (e.g. +01:00 or Z) "
        "so the time is unambiguous",
    ]
    assert [str(p) for p in cases[1].problems] == ["trace 2: the trace has no concept:name (case id)"]
    assert cases[0].rows == 3


def test_xes_events_of_another_lifecycle_are_set_apart(tmp_path):
    path = tmp_path / "log.xes"
    event = (
        '<event><string key="concept:name" value="IV Antibiotics"/><string key="lifecycle:transition" value="{}"/>'
        '<date key="time:timestamp" value="2014-10-22T11:15:41+02:00"/></event>'
    )
    path.write_text(
        f'<log><trace><string key="concept:name" value="A"/>{event.format("start")}{event.format("complete")}'
        "</trace></log>",
        encoding="utf-8",
    )

    _fmt, [case] = read(path)

    assert [e.lifecycle for e in case.events] == ["start", ""]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<log><trace></log>", "the XES file is not well-formed XML at line 1"),
        ("<html><body/></html>", "this is not an XES log: the document starts with <html>"),
    ],
)
def test_a_file_that_is_not_xes_is_refused_as_a_whole(tmp_path, content, message):
    path = tmp_path / "log.xes"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(SourceFormatError, match=message):
        read(path)


def test_csv_cases_are_read_with_bom_quotes_extra_columns_and_offsets(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "\ufeffCase_ID,Activity,Timestamp,Resource,Cost,Diagnosis\n"
        'A,"ER Registration",2025-01-10T10:00:00Z,"Nurse, ED",,private\n'
        'A,"IV Antibiotics",2025-01-10 11:00:00+01:00,"Dr ""B""",12.5,private\n'
        "B,ER Registration,2025-01-10T10:00:00.250-05:00,,,private\n",
        encoding="utf-8",
    )

    fmt, cases = read(path)

    assert fmt == "csv"
    a, b = cases
    assert [(e.activity, e.resource, e.cost) for e in a.events] == [
        ("ER Registration", "Nurse, ED", None),
        ("IV Antibiotics", 'Dr "B"', Decimal("12.5")),
    ]
    assert a.events[1].timestamp == datetime(2025, 1, 10, 10, 0, tzinfo=UTC)
    assert b.events[0].timestamp.utcoffset() == -timedelta(hours=5)
    assert (a.where, b.where) == ("line 2", "line 4")


def test_csv_problems_carry_the_physical_line_number(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "case_id,activity,timestamp,cost\n"
        'A,"Note with a\nline break",2025-01-10T10:00:00Z,\n'
        "A,ER Triage,2025-01-10T10:00:00Z,twelve\n"
        "A,ER Triage,2025-01-10T10:00:00Z,-3\n"
        "A,ER Triage\n"
        ",ER Triage,2025-01-10T10:00:00Z,\n"
        "\n"
        "B,ER Triage,2025-01-10T10:00:00+0100,\n",
        encoding="utf-8",
    )

    _fmt, items = read(path)

    orphan, a, b = items  # a row without a case id is reported at once, before the case it interrupts
    assert [str(p) for p in a.problems] == [
        "line 4: the cost 'twelve' is not a number (use a dot for decimals, no currency sign)",
        "line 5: the cost -3 is negative",
        "line 6: the row has 2 columns; the header has 4",
    ]
    assert a.events[0].where == "line 3"  # the quoted line break counts as a line
    assert isinstance(orphan, OrphanProblem) and str(orphan.problem) == "line 7: the case_id is empty"
    assert b.events[0].timestamp.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("case,activity,timestamp", "line 1: the header has no case_id column"),
        ("case_id,event,time", "line 1: the header has no activity, timestamp columns"),
        ("", "line 1: the header has no case_id, activity, timestamp columns"),
    ],
)
def test_a_csv_without_the_documented_columns_is_refused(tmp_path, header, message):
    path = tmp_path / "log.csv"
    path.write_text(header + "\nA,B,C\n", encoding="utf-8")

    with pytest.raises(SourceFormatError, match=message):
        read(path)


def test_csv_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes("case_id,activity,timestamp\nA,Tri\xe9,2025-01-10T10:00:00Z\n".encode("latin-1"))

    with pytest.raises(SourceFormatError, match="not UTF-8"):
        read(path)


def _peak_while_reading(path) -> int:
    opened = open_source(path)
    tracemalloc.start()
    try:
        count = sum(len(case.events) for case in read_source(opened))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        opened.close()
    assert count > 0
    return peak


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["xes", "csv"])
def test_memory_does_not_grow_with_the_file(tmp_path, fmt):
    def cases(n):
        return [(f"case-{i}", T0 + timedelta(hours=i), GOOD) for i in range(n)]

    if fmt == "xes":
        small, large = write_xes(tmp_path / "s.xes.gz", cases(200), gz=True), write_xes(tmp_path / "l.xes", cases(4000))
    else:
        small, large = write_csv(tmp_path / "s.csv", cases(200)), write_csv(tmp_path / "l.csv", cases(4000))

    peak_small, peak_large = _peak_while_reading(small), _peak_while_reading(large)

    # 20 times the events (40,000; several MB of file), about the same memory.
    assert peak_large < 2 * peak_small + 256 * 1024, (peak_small, peak_large)


def test_timestamps_keep_their_offset_and_compare_in_utc():
    from variances.importers.readers import parse_timestamp

    local = parse_timestamp("2014-10-22T11:15:41.000+02:00")
    assert local == datetime(2014, 10, 22, 9, 15, 41, tzinfo=UTC)
    assert local.tzinfo == timezone(timedelta(hours=2))
    with pytest.raises(ValueError, match="the timestamp is empty"):
        parse_timestamp("  ")
