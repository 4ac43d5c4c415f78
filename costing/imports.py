"""Import cost rates from files: our own CSV format and the NHS National Cost Collection schedule.

Both report every data row as created, updated, unchanged or rejected (with its
line number and the reason), and both are idempotent: importing the same file
again changes nothing and reports every row unchanged. A file is applied in one
transaction with one audit event; rows are written in bulk, so the full NCC
schedule (11,303 rows) imports in seconds.

An import makes each rate it names say what the file says: the figure and also its
price year, currency, source and includes, even where only the text differs (a
local note on the source is replaced by the file's). The source describes where the
figure comes from, so a file that sets the figure sets it too; and our CSV is how
finance corrects sources in bulk. Nothing is replaced silently: an updated row lists
each field it changed with the old and new value, and the audit event keeps both.

CostRate CSV (UTF-8, with or without BOM, comma separated, header row required)
---------------------------------------------------------------------------------
required columns: ``resource_code``, ``financial_year`` (``2025`` or ``2025/26``: the
April-March year it applies to), ``rate`` (per unit of the resource, up to 6
decimal places), ``source`` (where the figure comes from).
optional columns: ``price_year`` (default: the financial year), ``includes`` (what
the rate already covers, e.g. overheads), ``currency`` (the CURRENCY setting, GBP by
default, is the default and the only one accepted: costs add rates together), and, to create a
resource that does not exist yet, ``resource_name``, ``kind`` (staff, room, equipment,
consumable, drug, bed_day, overhead) and ``unit`` (minute, item, day).

NHS National Cost Collection schedule (the flattened national schedule)
------------------------------------------------------------------------
columns: ``Service Code, Dept or Currency Code, Dept or Currency Desc, Activity,
Unit cost, Cost``. Each row becomes a resource ``NCC-<currency code>-<service>``
(e.g. ``NCC-VB09Z-EC`` for an emergency care attendance) of kind *consumable*
for items bought per test or device (pathology, imaging, nuclear medicine, high
cost devices) and *overhead* for the bundled unit costs of HRGs and attendances,
with the unit cost as its rate for the chosen financial year. Critical care and
rehabilitation are costed per bed-day (unit *day*); everything else per item.
A unit cost of zero is rejected: NCC publishes no cost for that currency there.
"""

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from pathways.models import Resource

from .models import CostRate, financial_year_label
from .money import display, priced
from .rates import RATE_PLACES

MAX_RATE = Decimal("99999999.999999")
BATCH = 500

NCC_COLUMNS = ["Service Code", "Dept or Currency Code", "Dept or Currency Desc", "Activity", "Unit cost", "Cost"]
CSV_REQUIRED = ["resource_code", "financial_year", "rate", "source"]

NCC_SERVICES = {
    "Ambulance": "AMB",
    "Audiology": "AUD",
    "Cancer MDT": "MDT",
    "Community Health Service": "CHS",
    "Consultant Led": "CL",
    "Critical care": "CC",
    "Critical care transport": "CCT",
    "Daycase": "DC",
    "Diagnostic Imaging": "DI",
    "Directly Accessed Diagnostic Services": "DADS",
    "Directly Accessed Pathology Services": "PATH",
    "Elective Inpatients": "EL",
    "Emergency Care": "EC",
    "High Cost Devices": "HCD",
    "Mental Health Care Contact": "MHCC",
    "Mental Health Provider Spell": "MHPS",
    "National screening programmes": "NSP",
    "NHS Talking Therapy Care Contact": "TT",
    "Non Consultant Led": "NCL",
    "Non-Elective Inpatient - Long Stay": "NELL",
    "Non-Elective Inpatient - Short Stay": "NELS",
    "Nuclear Medicine": "NM",
    "Outpatient Procedures": "OPP",
    "Regular Day or Night Admissions": "RDN",
    "Rehabilitation Inpatient": "REHAB",
    "Renal Dialysis": "RENAL",
}
NCC_CONSUMABLE_SERVICES = {
    "Directly Accessed Pathology Services",
    "Directly Accessed Diagnostic Services",
    "Diagnostic Imaging",
    "Nuclear Medicine",
    "High Cost Devices",
}
NCC_PER_DAY_SERVICES = {"Critical care", "Rehabilitation Inpatient"}


# What an import may change on an existing rate, in the order an updated row lists it.
CHANGE_LABELS = {
    "rate": "Rate",
    "price_year": "Price year",
    "currency": "Currency",
    "source": "Source",
    "includes": "Includes",
    "capacity_working": "Capacity cost working",
}


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass(frozen=True)
class FieldChange:
    """One field of an existing rate that a file changed: old and new value as stored and as shown.

    Stored figures have the 6 places the database keeps, as in a rate's own audit
    events; shown ones have the places the pair needs, both alike, since "1737.829000"
    beside "1737.829" read as a changed figure when only the source had changed.
    """

    field: str  # a key of CHANGE_LABELS
    before: Decimal | int | str
    after: Decimal | int | str
    was: str
    now: str

    @property
    def label(self) -> str:
        return CHANGE_LABELS[self.field]


@dataclass
class RowResult:
    line: int
    code: str
    outcome: str
    financial_year: int | None = None
    rate: Decimal | None = None
    currency: str = ""
    changes: list[FieldChange] = field(default_factory=list)  # of an updated row
    reason: str = ""

    @property
    def financial_year_label(self) -> str:
        return financial_year_label(self.financial_year) if self.financial_year is not None else ""

    @property
    def rate_changed(self) -> bool:
        """Whether the figure itself changed, not only what is said about it."""
        return any(change.field == "rate" for change in self.changes)


@dataclass
class ImportResult:
    kind: str
    filename: str
    sha256: str
    rows: list[RowResult] = field(default_factory=list)
    resources_created: int = 0

    def _of(self, outcome: str) -> list[RowResult]:
        return [row for row in self.rows if row.outcome == outcome]

    @property
    def created(self) -> list[RowResult]:
        return self._of(Outcome.CREATED)

    @property
    def updated(self) -> list[RowResult]:
        return self._of(Outcome.UPDATED)

    @property
    def rates_changed(self) -> list[RowResult]:
        """Updated rows whose figure changed."""
        return [row for row in self.updated if row.rate_changed]

    @property
    def details_changed(self) -> list[RowResult]:
        """Updated rows whose figure stayed as it was: only its source or other details changed."""
        return [row for row in self.updated if not row.rate_changed]

    @property
    def unchanged(self) -> list[RowResult]:
        return self._of(Outcome.UNCHANGED)

    @property
    def rejected(self) -> list[RowResult]:
        return self._of(Outcome.REJECTED)

    def counts(self) -> dict[str, int]:
        return {
            "rows": len(self.rows),
            "created": len(self.created),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "rejected": len(self.rejected),
            "resources_created": self.resources_created,
        }


@dataclass
class _Candidate:
    """A parsed, valid row waiting to be written."""

    line: int
    code: str
    financial_year: int
    rate: Decimal
    price_year: int
    source: str
    includes: str
    currency: str
    new_resource: dict | None  # fields to create the resource with, when it is missing

    def rejected(self, reason: str) -> RowResult:
        """This row, refused for ``reason`` (shown with its line on the result page)."""
        return RowResult(
            line=self.line, code=self.code, outcome=Outcome.REJECTED, financial_year=self.financial_year, reason=reason
        )


# --- parsing -------------------------------------------------------------------------------


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"The file is not UTF-8 text (byte {exc.start} cannot be read).") from exc


def _reader(text: str, required: Iterable[str]) -> csv.DictReader:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise ValidationError("The file is empty: the first line must name the columns.")
    missing = [c for c in required if c not in header]
    if missing:
        raise ValidationError(
            f"The file has no column {', '.join(repr(c) for c in missing)}. Columns found: {', '.join(header)}."
        )
    reader.fieldnames = header
    return reader


def _rate(text: str) -> Decimal:
    try:
        value = Decimal((text or "").strip().replace(",", "").lstrip("£"))
    except InvalidOperation as exc:
        raise ValueError(f"the rate '{text}' is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"the rate '{text}' is not a number")
    if value < 0:
        raise ValueError("the rate is negative")
    if value > MAX_RATE:
        raise ValueError("the rate is too large")
    if value.as_tuple().exponent < -6:
        raise ValueError("the rate has more than 6 decimal places")
    return value


def _financial_year(text: str) -> int:
    text = (text or "").strip()
    head, _, tail = text.partition("/")
    if not head.isdigit() or len(head) != 4:
        raise ValueError(f"the financial year '{text}' is not a year like 2025 or 2025/26")
    year = int(head)
    if tail and tail != str(year + 1)[-len(tail) :]:
        raise ValueError(f"the financial year '{text}' does not run April {year} to March {year + 1}")
    if not 2000 <= year <= 2100:
        raise ValueError(f"the financial year '{text}' is out of range")
    return year


def _ncc_code(service: str, currency: str) -> str:
    short = NCC_SERVICES.get(service)
    if short is None:
        short = "".join(word[0] for word in service.replace("-", " ").split() if word[0].isalnum()).upper()[:6]
    return f"NCC-{currency}-{short}"


def parse_rates_csv(text: str) -> tuple[list[_Candidate], list[RowResult]]:
    reader = _reader(text, CSV_REQUIRED)
    kinds, units = set(Resource.Kind.values), set(Resource.Unit.values)
    candidates, rejected = [], []
    for row in reader:
        line = reader.line_num
        code = (row.get("resource_code") or "").strip().upper()
        try:
            if not code:
                raise ValueError("resource_code is empty")
            fy = _financial_year(row.get("financial_year", ""))
            rate = _rate(row.get("rate", ""))
            source = (row.get("source") or "").strip()
            if not source:
                raise ValueError("source is empty: say where the figure comes from")
            price_year = int(row["price_year"]) if (row.get("price_year") or "").strip() else fy
            new_resource = None
            if (row.get("resource_name") or "").strip():
                kind, unit = (row.get("kind") or "").strip(), (row.get("unit") or "").strip()
                if kind not in kinds:
                    raise ValueError(f"kind '{kind}' is not one of {', '.join(sorted(kinds))}")
                if unit not in units:
                    raise ValueError(f"unit '{unit}' is not one of {', '.join(sorted(units))}")
                salaried = (row.get("salaried") or "").strip().lower() in ("1", "true", "yes", "y")
                new_resource = {
                    "name": row["resource_name"].strip()[:200],
                    "kind": kind,
                    "unit": unit,
                    "salaried": salaried,
                }
        except (ValueError, KeyError) as exc:
            rejected.append(RowResult(line=line, code=code, outcome=Outcome.REJECTED, reason=str(exc)))
            continue
        candidates.append(
            _Candidate(
                line=line,
                code=code,
                financial_year=fy,
                rate=rate,
                price_year=price_year,
                source=source[:300],
                includes=(row.get("includes") or "").strip()[:300],
                currency=((row.get("currency") or "").strip().upper() or settings.CURRENCY)[:3],
                new_resource=new_resource,
            )
        )
    return candidates, rejected


def parse_ncc(text: str, *, financial_year: int, price_year: int) -> tuple[list[_Candidate], list[RowResult]]:
    reader = _reader(text, NCC_COLUMNS)
    label = financial_year_label(financial_year)
    candidates, rejected = [], []
    for row in reader:
        line = reader.line_num
        service = (row.get("Service Code") or "").strip()
        currency = (row.get("Dept or Currency Code") or "").strip().upper()
        description = (row.get("Dept or Currency Desc") or "").strip()
        code = _ncc_code(service, currency) if service and currency else currency
        try:
            if not service:
                raise ValueError("Service Code is empty")
            if not currency:
                raise ValueError("Dept or Currency Code is empty")
            if len(code) > 40:
                raise ValueError(f"the resource code {code} would be longer than 40 characters")
            rate = _rate(row.get("Unit cost", ""))
            if rate == 0:
                raise ValueError("the unit cost is 0: NCC publishes no cost for this currency here")
        except ValueError as exc:
            rejected.append(RowResult(line=line, code=code, outcome=Outcome.REJECTED, reason=str(exc)))
            continue
        consumable = service in NCC_CONSUMABLE_SERVICES
        candidates.append(
            _Candidate(
                line=line,
                code=code,
                financial_year=financial_year,
                rate=rate,
                price_year=price_year,
                source=f"NHS National Cost Collection {label} national schedule: {service}, {currency}",
                includes="Full absorbed cost (staff, consumables and overheads), national average",
                currency="GBP",
                new_resource={
                    "name": f"{description} ({service})"[:200],
                    "kind": Resource.Kind.CONSUMABLE if consumable else Resource.Kind.OVERHEAD,
                    "unit": Resource.Unit.DAY if service in NCC_PER_DAY_SERVICES else Resource.Unit.ITEM,
                    "salaried": False,
                    "description": f"NCC {label} currency {currency}: {description}. Service: {service}.",
                },
            )
        )
    return candidates, rejected


# --- applying ------------------------------------------------------------------------------


def _figures(before: Decimal, before_currency: str, after: Decimal, after_currency: str) -> tuple[str, str]:
    """Two rates written to the same places, at least two: "£177.0078" and "£180.5000"."""
    places = max(2, *(-value.normalize().as_tuple().exponent for value in (before, after)))
    return priced(f"{before:,.{places}f}", before_currency), priced(f"{after:,.{places}f}", after_currency)


def _capacity_working(rate: CostRate) -> str:
    """The calculator's working as the rate's page writes it: "£120,000.00 / (100000 min x 0.85)"."""
    cost = priced(display(rate.capacity_cost), rate.currency)
    minutes, factor = rate.theoretical_capacity_minutes.normalize(), rate.practical_factor.normalize()
    return f"{cost} / ({minutes:f} min x {factor:f})"


def _changes(rate: CostRate, c: _Candidate) -> list[FieldChange]:
    """What applying ``c`` would change on ``rate``, field by field; empty when the file says what the rate says."""
    changes = []
    if rate.rate != c.rate:
        was, now = _figures(rate.rate, rate.currency, c.rate, c.currency)
        changes.append(FieldChange("rate", rate.rate.quantize(RATE_PLACES), c.rate.quantize(RATE_PLACES), was, now))
    for name in ("price_year", "currency", "source", "includes"):
        before, after = getattr(rate, name), getattr(c, name)
        if before != after:
            changes.append(FieldChange(name, before, after, str(before) or "-", str(after) or "-"))
    if rate.capacity_cost is not None:
        # A figure from a file is not the calculator's: its working no longer explains it.
        working = _capacity_working(rate)
        changes.append(FieldChange("capacity_working", working, "", working, "none"))
    return changes


def _apply(candidates: list[_Candidate], rejected: list[RowResult], result: ImportResult, actor) -> None:
    seen: dict[tuple[str, int], int] = {}
    unique: list[_Candidate] = []
    for c in candidates:
        key = (c.code, c.financial_year)
        if c.currency != settings.CURRENCY:
            # Costs add rates together without converting: a figure in another currency would count as ours.
            rejected.append(
                c.rejected(
                    f"the rate is in {c.currency}, not {settings.CURRENCY}: convert it to {settings.CURRENCY} first "
                    f"(costs add rates together, so it would be counted as {settings.CURRENCY})"
                )
            )
            continue
        if key in seen:
            rejected.append(
                c.rejected(
                    f"repeats {c.code} for FY {financial_year_label(c.financial_year)} (first on line {seen[key]})"
                )
            )
            continue
        seen[key] = c.line
        unique.append(c)

    codes = {c.code for c in unique}
    resources = {r.code: r for r in Resource.objects.filter(code__in=codes)}
    to_create: dict[str, Resource] = {}
    ready: list[_Candidate] = []
    for c in unique:
        if c.code in resources or c.code in to_create:
            existing = resources.get(c.code)
            if existing is not None and c.new_resource and c.new_resource["unit"] != existing.unit:
                rejected.append(
                    c.rejected(f"{c.code} exists with unit '{existing.unit}', the file says '{c.new_resource['unit']}'")
                )
                continue
            ready.append(c)
        elif c.new_resource:
            to_create[c.code] = Resource(code=c.code, **c.new_resource)
            ready.append(c)
        else:
            rejected.append(
                c.rejected(f"no resource {c.code}: add it first, or give resource_name, kind and unit to create it")
            )
    if to_create:
        Resource.objects.bulk_create(to_create.values(), batch_size=BATCH)
        resources.update({r.code: r for r in Resource.objects.filter(code__in=to_create)})
        result.resources_created = len(to_create)

    existing_rates = {
        (r.resource_id, r.financial_year): r
        for r in CostRate.objects.filter(
            resource_id__in=[resources[c.code].pk for c in ready],
            financial_year__in={c.financial_year for c in ready},
        )
    }
    now = timezone.now()
    new_rates, changed = [], []
    rows = list(rejected)
    for c in ready:
        resource = resources[c.code]
        current = existing_rates.get((resource.pk, c.financial_year))
        row = RowResult(
            line=c.line, code=c.code, outcome="", financial_year=c.financial_year, rate=c.rate, currency=c.currency
        )
        if current is None:
            new_rates.append(
                CostRate(
                    resource=resource,
                    financial_year=c.financial_year,
                    rate=c.rate,
                    price_year=c.price_year,
                    source=c.source,
                    includes=c.includes,
                    currency=c.currency,
                    updated_at=now,
                    updated_by=actor,
                )
            )
            row.outcome = Outcome.CREATED
        elif not (changes := _changes(current, c)):
            row.outcome = Outcome.UNCHANGED
        else:
            row.changes = changes
            current.rate, current.price_year, current.source = c.rate, c.price_year, c.source
            current.includes, current.currency = c.includes, c.currency
            current.capacity_cost = current.theoretical_capacity_minutes = current.practical_factor = None
            current.updated_at, current.updated_by = now, actor
            changed.append(current)
            row.outcome = Outcome.UPDATED
        rows.append(row)
    CostRate.objects.bulk_create(new_rates, batch_size=BATCH)
    CostRate.objects.bulk_update(
        changed,
        [
            "rate",
            "price_year",
            "source",
            "includes",
            "currency",
            "capacity_cost",
            "theoretical_capacity_minutes",
            "practical_factor",
            "updated_at",
            "updated_by",
        ],
        batch_size=BATCH,
    )
    result.rows = sorted(rows, key=lambda r: r.line)


def _run(kind: str, data: bytes | str, filename: str, actor, parse) -> ImportResult:
    raw = data.encode() if isinstance(data, str) else data
    result = ImportResult(kind=kind, filename=filename, sha256=hashlib.sha256(raw).hexdigest())
    candidates, rejected = parse(_decode(data))
    with transaction.atomic():
        _apply(candidates, rejected, result, actor)
        audit_record(
            action=f"cost_rate.import_{kind}",
            actor=actor,
            object_type="costing.costrate",
            detail={
                "file": filename,
                "sha256": result.sha256,
                **result.counts(),
                "updated": [
                    {
                        "code": r.code,
                        "fy": r.financial_year,
                        "before": {change.field: change.before for change in r.changes},
                        "after": {change.field: change.after for change in r.changes},
                    }
                    for r in result.updated
                ],
            },
        )
    return result


def import_rates_csv(*, data: bytes | str, actor, filename: str = "") -> ImportResult:
    """Apply a CostRate CSV (format in the module docstring). Raises ``ValidationError`` for an unreadable file."""
    return _run("csv", data, filename, actor, parse_rates_csv)


def import_ncc(
    *, data: bytes | str, actor, financial_year: int, price_year: int | None = None, filename: str = ""
) -> ImportResult:
    """Apply an NCC national schedule as rates for ``financial_year`` (e.g. 2023 for the 2023/24 schedule)."""
    return _run(
        "ncc",
        data,
        filename,
        actor,
        lambda text: parse_ncc(text, financial_year=financial_year, price_year=price_year or financial_year),
    )
