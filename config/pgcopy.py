"""PostgreSQL ``COPY ... FROM STDIN`` in text format, for bulk writes that Django's ORM makes slow.

Used where hundreds of thousands of rows are written at once (derived cost
summaries, imported events): one place for the text format's escapes and for
logging the statement like any other query.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import date
from decimal import Decimal

from django.db import connection

NULL = "\\N"
# Backslash, tab and line breaks are escaped in COPY's text format.
ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text(value) -> str:
    """One value in COPY text format: ``\\N`` for null, ``t``/``f``, ISO dates and times, escaped text."""
    kind = type(value)
    if kind is Decimal or kind is int:
        return str(value)
    if value is None:
        return NULL
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, date):  # datetimes too: isoformat keeps the offset
        return value.isoformat()
    if isinstance(value, str):
        return value.translate(ESCAPES)
    return str(value)


def next_ids(table: str, count: int) -> list[int]:
    """``count`` ids from ``table``'s own sequence, taken now, for rows written later with ``COPY``.

    Rows can then refer to each other before any is written (an event's quantities,
    a variance's detection), and never collide with rows other sessions insert.
    """
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        sequence = _sequences.get(table)
        if sequence is None:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = _sequences[table] = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
        return [row[0] for row in cursor.fetchall()]


_sequences: dict[str, str] = {}  # table -> its id sequence (the name is fixed by the migrations)


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """``COPY table (columns) FROM STDIN`` with ``rows`` of Python values, on the default connection."""
    copy_buffer(copy_statement(table, columns), rows_text(rows))


def copy_statement(table: str, columns: Sequence[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN"


def rows_text(rows: Iterable[Sequence]) -> io.StringIO:
    """``rows`` of Python values as COPY's text, ready to send."""
    buffer = io.StringIO()
    buffer.writelines("\t".join(map(text, row)) + "\n" for row in rows)
    buffer.seek(0)
    return buffer


def copy_buffer(sql: str, buffer: io.StringIO) -> None:
    """Run a ``COPY ... FROM STDIN`` statement, logged like any query where Django logs queries."""
    with connection.cursor() as cursor, cursor.debug_sql(sql) if hasattr(cursor, "debug_sql") else nullcontext():
        cursor.cursor.copy_expert(sql, buffer)
