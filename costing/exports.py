"""Every report table as CSV and XLSX (openpyxl), as the viewer may see it.

Exports are built from ``suppression.result_for``: a manager's spreadsheet holds
the same ``*`` as their screen and no named clinicians. Money is rounded half up to
pence, as displayed; a variance stays a signed number (positive = adverse), its heading
saying so. Text that a spreadsheet would run as a formula (``=``, ``+``,
``-``, ``@`` first) is prefixed with an apostrophe (CSV/formula injection).
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal, InvalidOperation

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from .money import column_header, round_money
from .suppression import SUPPRESSED

# Sheet names are at most 31 characters: short names per table key.
SHEET_NAMES = {
    "adherence": "Adherence",
    "by_type": "By type",
    "by_cause": "By cause",
    "by_reason": "By reason",
    "by_pathway": "By pathway",
    "by_step": "By step",
    "trend": "By month",
    "by_month": "By month",
    "documentation_time": "Time to document",
    "positive": "Positive variance",
    "revision_signals": "Revision signals",
    "by_unit": "By unit",
    "by_clinician": "Clinicians",
    "by_component": "By component",
    "drivers": "Top cost drivers",
    "los": "Length of stay",
    "outcomes": "Outcomes",
    "period": "Budget",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SUPPRESSION_NOTE = "* hides a figure covering 1 to 7 episodes, or one that would let such a figure, or a colleague's own figures, be worked out."


def _safe_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def cell_value(value, kind: str):
    """A table cell as a spreadsheet value: numbers stay numbers, suppressed stays ``*``."""
    if value is None:
        return ""
    if value == SUPPRESSED:
        return SUPPRESSED
    if kind in ("money", "variance"):
        return round_money(Decimal(str(value)))
    if kind in ("share", "cumulative"):
        return (Decimal(str(value)) * 100).quantize(Decimal("0.1"))
    if kind == "number":
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return _safe_text(str(value))
    if kind == "int":
        return value
    return _safe_text(str(value))


# A variance is exported as a signed number, so that a spreadsheet can add it up; the page's
# U/F is then in the heading (CSV) and in the cell's number format (XLSX), not in the value.
VARIANCE_SIGN = "positive = adverse U, negative = favourable F"
VARIANCE_FORMAT = '#,##0.00" U";#,##0.00" F";0.00'


def _header(column: dict) -> str:
    header = column_header(column["label"], column["kind"])
    if column["kind"] == "variance":
        return f"{header[:-1]}, {VARIANCE_SIGN})" if header.endswith(")") else f"{header} ({VARIANCE_SIGN})"
    return header


def _rows(table: dict):
    columns = table["columns"]
    yield [_header(c) for c in columns]
    for row in table["rows"]:
        yield [cell_value(row.get(c["key"]), c["kind"]) for c in columns]
    if table.get("total"):
        yield [cell_value(table["total"].get(c["key"]), c["kind"]) for c in columns]


def table_csv(table: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in _rows(table):
        writer.writerow(row)
    if table.get("suppressed"):
        writer.writerow([SUPPRESSION_NOTE])
    return out.getvalue()


def _sheet_title(title: str, used: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", " ", title)[:28].strip() or "Table"
    name, n = base, 2
    while name.lower() in used:
        name = f"{base[:26]} {n}"
        n += 1
    used.add(name.lower())
    return name


def _fill(sheet, table: dict) -> None:
    bold = Font(bold=True)
    kinds = [c["kind"] for c in table["columns"]]
    for r, row in enumerate(_rows(table), start=1):
        sheet.append(row)
        for c, kind in enumerate(kinds, start=1):
            cell = sheet.cell(row=r, column=c)
            if r == 1:
                cell.font = bold
            elif kind == "variance" and cell.value != SUPPRESSED:
                cell.number_format = VARIANCE_FORMAT  # shows 919.13 F for -919.13, as the page does
            elif kind == "money" and cell.value != SUPPRESSED:
                cell.number_format = "#,##0.00"
    if table.get("total"):
        for cell in sheet[sheet.max_row]:
            cell.font = bold
    if table.get("suppressed"):
        sheet.append([SUPPRESSION_NOTE])
    for c, column in enumerate(table["columns"], start=1):
        sheet.column_dimensions[get_column_letter(c)].width = 40 if c == 1 else max(12, len(column["label"]) + 4)


def result_workbook(result: dict, *, title: str, keys: list[str] | None = None) -> bytes:
    """A workbook: a cover sheet (what, when, for whom) and one sheet per table."""
    book = Workbook()
    cover = book.active
    cover.title = "Report"
    cover.append([title])
    cover["A1"].font = Font(bold=True, size=14)
    cover.append(["Covers", result.get("description", "")])
    cover.append(["Computed at", result.get("computed_at", "")])
    cover.append(["Currency", result.get("currency", "")])
    for note in result.get("notes", []):
        cover.append(["Note", note])
    if result.get("suppressed"):
        cover.append(["Privacy", SUPPRESSION_NOTE])
    cover.column_dimensions["A"].width = 16
    cover.column_dimensions["B"].width = 90
    used = {"report"}
    for key in keys or list(result["tables"]):
        table = result["tables"].get(key)
        if table is None:
            continue
        _fill(book.create_sheet(_sheet_title(SHEET_NAMES.get(key, table["title"]), used)), table)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def table_workbook(table: dict, key: str = "") -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = _sheet_title(SHEET_NAMES.get(key, table["title"]), set())
    _fill(sheet, table)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
