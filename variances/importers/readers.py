"""Streaming readers for event logs: XES (IEEE 1849, plain or gzip) and CSV.

Both readers yield one ``SourceCase`` at a time and keep nothing else, so memory
stays flat whatever the file size: the XES reader clears every element once it
has been read (``iterparse`` would otherwise build the whole tree), the CSV
reader holds only the rows of the current case.

A problem in a row never stops the reader: it is attached to the case (or, for
a row that belongs to no case, yielded on its own) with its place in the file,
so that the loader can report every problem of a file in one pass.

Places are given as ``line N`` (CSV) or ``trace N, event M`` (XES, counted from
1 in file order). Case ids are deliberately left out of problem messages: they
may be hospital numbers, and problems are stored with the import job.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import xml.etree.ElementTree as ET  # noqa: S405 - expat >= 2.4 refuses entity expansion bombs; no external entities
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

CSV_REQUIRED = ("case_id", "activity", "timestamp")
CSV_OPTIONAL = ("resource", "cost")
MAX_ACTIVITY = 200  # StepEvent.activity
MAX_RESOURCE = 150  # StepEvent.performed_by
MAX_CASE_ID = 200


class SourceFormatError(Exception):
    """The file as a whole cannot be read (wrong header, not XML, not gzip...)."""


@dataclass(slots=True)
class Problem:
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(slots=True)
class SourceEvent:
    activity: str
    timestamp: datetime
    resource: str
    cost: Decimal | None
    position: int  # order in the file within its case, from 0: breaks timestamp ties stably
    where: str
    lifecycle: str = ""


@dataclass(slots=True)
class SourceCase:
    case_id: str
    where: str  # where the case starts in the file
    rows: int = 0  # event rows read for the case, good or bad
    events: list[SourceEvent] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class OrphanProblem:
    """A row that belongs to no case (no case id): reported, never imported."""

    problem: Problem


@dataclass(slots=True)
class OpenedSource:
    format: str  # "xes" or "csv"
    stream: BinaryIO
    size: int
    raw: BinaryIO  # the file on disk: its position measures progress (compressed bytes for .gz)

    def position(self) -> int:
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.close()


def open_source(path: str | os.PathLike, *, name: str = "") -> OpenedSource:
    """Open an event log for streaming; gzip is recognised by its magic bytes.

    The format comes from the file name (``.xes``, ``.xes.gz``, ``.csv``,
    ``.csv.gz``; ``name`` overrides the path's name for uploads stored under a
    random name); otherwise a file whose first character is ``<`` is XES.
    """
    raw = open(path, "rb")  # noqa: SIM115 - closed by OpenedSource.close()
    try:
        size = os.fstat(raw.fileno()).st_size
        magic = raw.read(2)
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
        label = (name or os.fspath(path)).lower().removesuffix(".gz")
        if label.endswith(".xes") or label.endswith(".xml"):
            fmt = "xes"
        elif label.endswith(".csv"):
            fmt = "csv"
        else:
            fmt = _sniff(stream)
        return OpenedSource(format=fmt, stream=stream, size=size, raw=raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raw.close()
        raise SourceFormatError(f"the file cannot be read: {exc}") from exc
    except BaseException:
        raw.close()
        raise


def _sniff(stream) -> str:
    head = stream.read(512)
    stream.seek(0)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return "xes" if text.startswith(b"<") else "csv"


def read_source(opened: OpenedSource, *, lifecycle: str = "complete") -> Iterator[SourceCase | OrphanProblem]:
    if opened.format == "xes":
        return read_xes(opened.stream, lifecycle=lifecycle)
    return read_csv(io.TextIOWrapper(opened.stream, encoding="utf-8-sig", newline=""))


# --- values ----------------------------------------------------------------------------


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset (``Z`` allowed). Raises ValueError with a reason."""
    value = (value or "").strip()
    if not value:
        raise ValueError("the timestamp is empty")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"'{value[:40]}' is not an ISO 8601 timestamp (expected e.g. 2014-10-22T11:15:41+02:00)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"the timestamp '{value[:40]}' has no UTC offset; add one (e.g. +01:00 or Z) so the time is unambiguous"
        )
    return moment


def parse_cost(value: str) -> Decimal | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        cost = Decimal(value)
    except InvalidOperation:
        raise ValueError(
            f"the cost '{value[:40]}' is not a number (use a dot for decimals, no currency sign)"
        ) from None
    if not cost.is_finite():
        raise ValueError(f"the cost '{value[:40]}' is not a number")
    if cost < 0:
        raise ValueError(f"the cost {value} is negative")
    return cost


def _check_text(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"the {what} is longer than {limit} characters")
    return value


# --- XES -------------------------------------------------------------------------------

_XES_VALUE_TAGS = ("string", "date", "int", "float", "boolean", "id")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _attributes(element, value_tags: frozenset[str]) -> dict[str, str]:
    """The element's own (not nested) attributes, key -> value."""
    values = {}
    for child in element:
        if child.tag in value_tags:
            key = child.get("key")
            if key is not None:
                values[key] = child.get("value", "")
    return values


def read_xes(stream, *, lifecycle: str = "complete") -> Iterator[SourceCase]:
    """Yield the traces of an XES log, one ``SourceCase`` each.

    Reads ``concept:name`` (trace: case id; event: activity), ``time:timestamp``,
    ``org:resource`` (or, failing that, ``org:group``) and ``cost:total``. Events
    whose ``lifecycle:transition`` is present and differs from ``lifecycle`` are
    set apart (a log with start and complete events would otherwise count every
    activity twice); the loader counts them.
    """
    trace_no = 0
    event_no = 0
    case: SourceCase | None = None
    root = None
    # Tag names as the parser reports them: with the log's namespace, if it has one
    # (compared as whole strings, the cheapest test for some 20 elements per event).
    trace_tag = event_tag = ""
    value_tags: frozenset[str] = frozenset()
    try:
        for action, element in ET.iterparse(stream, events=("start", "end")):  # noqa: S314 - see import note
            tag = element.tag
            if action == "start":
                if root is None:
                    root = element
                    if _local(tag) != "log":
                        raise SourceFormatError(
                            f"this is not an XES log: the document starts with <{_local(tag)}>, not <log>"
                        )
                    namespace = tag[: -len("log")]
                    trace_tag, event_tag = namespace + "trace", namespace + "event"
                    value_tags = frozenset(namespace + t for t in _XES_VALUE_TAGS)
                elif tag == trace_tag and case is None:
                    trace_no += 1
                    event_no = 0
                    case = SourceCase(case_id="", where=f"trace {trace_no}")
                continue
            if tag == event_tag and case is not None:
                event_no += 1
                case.rows += 1
                _read_xes_event(case, _attributes(element, value_tags), trace_no, event_no, lifecycle)
                element.clear()
            elif tag == trace_tag and case is not None:
                case.case_id = _attributes(element, value_tags).get("concept:name", "").strip()
                if not case.case_id:
                    case.problems.insert(0, Problem(case.where, "the trace has no concept:name (case id)"))
                elif len(case.case_id) > MAX_CASE_ID:
                    case.problems.insert(0, Problem(case.where, f"the case id is longer than {MAX_CASE_ID} characters"))
                yield case
                case = None
                element.clear()
                root.clear()  # drop the emptied traces too: memory stays flat
    except ET.ParseError as exc:
        line, column = exc.position
        raise SourceFormatError(f"the XES file is not well-formed XML at line {line}, column {column}") from exc
    if root is None:
        raise SourceFormatError("the file is empty")


def _read_xes_event(case: SourceCase, values: dict[str, str], trace_no: int, event_no: int, lifecycle: str) -> None:
    where = f"trace {trace_no}, event {event_no}"
    transition = values.get("lifecycle:transition", "").strip()
    try:
        activity = _check_text(values.get("concept:name", "").strip(), "activity name", MAX_ACTIVITY)
        if not activity:
            raise ValueError("the event has no concept:name (activity)")
        if "time:timestamp" not in values:
            raise ValueError("the event has no time:timestamp")
        timestamp = parse_timestamp(values["time:timestamp"])
        resource = values.get("org:resource", values.get("org:group", "")).strip()
        resource = _check_text(resource, "resource", MAX_RESOURCE)
        cost = parse_cost(values.get("cost:total", ""))
    except ValueError as exc:
        case.problems.append(Problem(where, str(exc)))
        return
    if transition and lifecycle and transition.lower() != lifecycle.lower():
        case.events.append(
            SourceEvent(activity, timestamp, resource, cost, event_no - 1, where, lifecycle=transition.lower())
        )
        return
    case.events.append(SourceEvent(activity, timestamp, resource, cost, event_no - 1, where))


# --- CSV -------------------------------------------------------------------------------


def read_csv(text) -> Iterator[SourceCase | OrphanProblem]:
    """Yield the cases of a CSV event log; the rows of a case must be next to each other.

    Columns (header row, any order, names as below; other columns are ignored and
    never stored): ``case_id``, ``activity``, ``timestamp`` (ISO 8601 with a UTC
    offset), optional ``resource`` and ``cost``.
    """
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise SourceFormatError("the file is empty") from None
    except UnicodeDecodeError as exc:
        raise SourceFormatError("the file is not UTF-8 text; save it as UTF-8 (with or without BOM)") from exc
    except csv.Error as exc:
        raise SourceFormatError(f"line 1: the header cannot be read: {exc}") from exc
    names = [name.strip().lower() for name in header]
    missing = [name for name in CSV_REQUIRED if name not in names]
    if missing:
        raise SourceFormatError(
            f"line 1: the header has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}; "
            f"expected the columns {', '.join(CSV_REQUIRED)} and optionally {', '.join(CSV_OPTIONAL)}"
        )
    i_case, i_activity, i_time = (names.index(name) for name in CSV_REQUIRED)
    i_resource = names.index("resource") if "resource" in names else None
    i_cost = names.index("cost") if "cost" in names else None
    width = max(i for i in (i_case, i_activity, i_time, i_resource, i_cost) if i is not None) + 1

    case: SourceCase | None = None
    try:
        for row in reader:
            line = reader.line_num
            where = f"line {line}"
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < width:
                problem = Problem(where, f"the row has {len(row)} columns; the header has {len(header)}")
                row_case = row[i_case].strip() if len(row) > i_case else ""
                if case is not None and row_case == case.case_id:
                    case.rows += 1
                    case.problems.append(problem)
                else:
                    yield OrphanProblem(problem)
                continue
            case_id = row[i_case].strip()
            if not case_id:
                yield OrphanProblem(Problem(where, "the case_id is empty"))
                continue
            if case is None or case_id != case.case_id:
                if case is not None:
                    yield case
                case = SourceCase(case_id=case_id, where=where)
                if len(case_id) > MAX_CASE_ID:
                    case.problems.append(Problem(where, f"the case id is longer than {MAX_CASE_ID} characters"))
            case.rows += 1
            try:
                activity = _check_text(row[i_activity].strip(), "activity name", MAX_ACTIVITY)
                if not activity:
                    raise ValueError("the activity is empty")
                timestamp = parse_timestamp(row[i_time])
                resource = (
                    _check_text(row[i_resource].strip(), "resource", MAX_RESOURCE) if i_resource is not None else ""
                )
                cost = parse_cost(row[i_cost]) if i_cost is not None else None
            except ValueError as exc:
                case.problems.append(Problem(where, str(exc)))
                continue
            case.events.append(SourceEvent(activity, timestamp, resource, cost, len(case.events), where))
    except csv.Error as exc:
        raise SourceFormatError(f"line {reader.line_num}: the CSV cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SourceFormatError(
            f"after line {reader.line_num}: the file is not UTF-8 text; save it as UTF-8 (with or without BOM)"
        ) from exc
    if case is not None:
        yield case


def csv_has_cost_column(opened: OpenedSource) -> bool:
    """Whether a CSV names a ``cost`` column (read from the header only; rewinds)."""
    if opened.format != "csv":
        return False
    head = opened.stream.readline()
    opened.stream.seek(0)
    names = next(csv.reader([head.decode("utf-8-sig", "replace")]), [])
    return "cost" in (name.strip().lower() for name in names)
