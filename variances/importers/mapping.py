"""Mapping files: which source activity is which pathway step (JSON, validated).

A mapping file says, for one source of event data, how its activity names map
onto a pathway. Example (``data/mappings/sepsis-4tu.json`` is a full one)::

    {
      "format": 1,
      "source": "4tu-sepsis-cases",
      "pathway": "SEPSIS-ED",
      "patient_ref_prefix": "SX",
      "description": "What the file is and where it comes from.",
      "steps": {
        "ER Registration": "ER-REGISTRATION",
        "CRP": "BLOODS",
        "Admission IC": {"step": "ADMISSION", "quantities": {"NCC-XC06Z-CC": "1"}}
      },
      "outcomes": {"Return ER": "readmitted_30d"},
      "ignore": ["Some administrative activity"],
      "lifecycle": "complete",
      "cost_resource": null
    }

- ``source`` (required): a short stable name of the system the data comes from
  (``a-z``, digits, ``.``, ``_``, ``-``). It salts the pseudonymous patient
  references and the events' external ids, so keep it the same across imports
  of the same system or the second import will not recognise the first.
- ``steps`` (required): activity name -> step code, or -> ``{"step": code,
  "quantities": {resource code: quantity}}`` when the activity consumed a known
  amount of a resource (recorded as the event's actual quantity). Several
  activities may map to one step; the first event of any of them satisfies it.
- ``outcomes``: activity name -> ``readmitted_30d`` (the patient came back within
  30 days of the end of the episode) or ``complication``. Outcome activities set
  the episode's outcome; they are not events of the pathway.
- ``ignore``: activity names left out altogether.
- Any activity not named anywhere is imported as an unplanned activity, which
  detection reports as an *addition*.
- ``pathway``: if given, the import refuses any other pathway (a mapping is
  written for one pathway's step codes).
- ``patient_ref_prefix``: 1-6 capital letters or digits, starting with a letter
  (default ``IMP``); patient references look like ``SX-3F9A0C1D2E4B5A6F``.
- ``lifecycle``: XES only: import events with this ``lifecycle:transition``
  (default ``complete``); events without the attribute are always imported.
- ``cost_resource``: the resource code a CSV ``cost`` column (or XES
  ``cost:total``) is recorded against, as the event's actual unit cost.

Activity names are matched exactly (after trimming spaces at either end).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

FORMAT = 1
OUTCOMES = {
    "readmitted_30d": "the patient came back within 30 days of the end of the episode",
    "complication": "a complication",
}
READMISSION_WINDOW = timedelta(days=30)
KNOWN_KEYS = (
    "format",
    "source",
    "pathway",
    "patient_ref_prefix",
    "description",
    "steps",
    "outcomes",
    "ignore",
    "lifecycle",
    "cost_resource",
)
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,59}$")
PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9]{0,5}$")
STEP_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,39}$")
MAX_MAPPING_BYTES = 1024 * 1024


class MappingError(Exception):
    """The mapping file is not usable. ``problems`` lists every reason, each on its own.

    ``mapping`` holds what could still be read of a JSON object with problems (the
    well-formed entries only), or None: checked against a pathway with
    ``loader.resolve(..., problems=...)`` it lets a caller list the file's problems
    and the pathway's (unknown step codes, resources) together, not one kind per upload.
    """

    def __init__(self, name: str, problems: list[str], *, mapping: Mapping | None = None):
        self.name = name
        self.problems = problems
        self.mapping = mapping
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"The mapping {name} cannot be used:\n{lines}")


@dataclass(frozen=True, slots=True)
class StepTarget:
    step_code: str
    quantities: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True)
class Mapping:
    name: str
    source: str
    pathway: str
    patient_ref_prefix: str
    description: str
    steps: dict[str, StepTarget]
    outcomes: dict[str, str]
    ignore: frozenset[str]
    lifecycle: str
    cost_resource: str
    document: dict

    @property
    def step_codes(self) -> set[str]:
        return {target.step_code for target in self.steps.values()}

    @property
    def resource_codes(self) -> set[str]:
        codes = {code for target in self.steps.values() for code, _ in target.quantities}
        if self.cost_resource:
            codes.add(self.cost_resource)
        return codes


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file. Raises ``MappingError`` with every problem found."""
    path = Path(path)
    name = path.name
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            raise MappingError(name, [f"the file is larger than {MAX_MAPPING_BYTES // 1024} KB; is it a mapping?"])
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MappingError(name, [f"there is no file {path}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(name, [f"the file cannot be read: {exc}"]) from None
    return parse_mapping_text(text, name=name)


def parse_mapping_text(text: str, *, name: str = "mapping") -> Mapping:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MappingError(
            name, [f"it is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"]
        ) from None
    return parse_mapping(document, name=name)


def parse_mapping(document, *, name: str = "mapping") -> Mapping:
    """Validate a mapping document (already parsed JSON)."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise MappingError(name, ["the file must hold one JSON object ({...}) at the top"])

    for key in document:
        if key not in KNOWN_KEYS:
            problems.append(f"unknown key '{key}' (the keys a mapping may have: {', '.join(KNOWN_KEYS)})")

    fmt = document.get("format", FORMAT)
    if fmt != FORMAT:
        problems.append(f"'format' is {fmt!r}; this version of CommonPath reads mapping format {FORMAT}")

    # A bad value is replaced by "" (or the default) so that what is left can still be
    # checked against a pathway without a second, confusing message about the same value.
    source = document.get("source")
    if not isinstance(source, str) or not SOURCE_RE.match(source):
        problems.append(
            "'source' must name the system the data comes from: 1-60 characters a-z, 0-9, '.', '_' or '-' "
            '(e.g. "4tu-sepsis-cases")'
        )
        source = ""
    pathway = document.get("pathway", "")
    if pathway and (not isinstance(pathway, str) or not STEP_CODE_RE.match(pathway)):
        problems.append("'pathway' must be a pathway code such as SEPSIS-ED")
        pathway = ""
    prefix = document.get("patient_ref_prefix", "IMP")
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
        problems.append("'patient_ref_prefix' must be 1-6 capital letters or digits, starting with a letter (e.g. SX)")
        prefix = "IMP"
    description = document.get("description", "")
    if not isinstance(description, str):
        problems.append("'description' must be text")
        description = ""
    lifecycle = document.get("lifecycle", "complete")
    if not isinstance(lifecycle, str):
        problems.append("'lifecycle' must be text such as \"complete\"")
        lifecycle = "complete"
    cost_resource = document.get("cost_resource") or ""
    if not isinstance(cost_resource, str):
        problems.append("'cost_resource' must be a resource code, or null")
        cost_resource = ""

    steps = _parse_steps(document.get("steps"), problems)
    outcomes = _parse_outcomes(document.get("outcomes", {}), problems)
    ignore = _parse_ignore(document.get("ignore", []), problems)

    seen: dict[str, str] = {}
    for section, names in (("steps", steps), ("outcomes", outcomes), ("ignore", ignore)):
        for activity in names:
            if activity in seen:
                problems.append(f"the activity '{activity}' is listed in both '{seen[activity]}' and '{section}'")
            else:
                seen[activity] = section

    mapping = Mapping(
        name=name,
        source=source,
        pathway=pathway or "",
        patient_ref_prefix=prefix,
        description=description,
        steps=steps,
        outcomes=outcomes,
        ignore=frozenset(ignore),
        lifecycle=lifecycle.strip().lower(),
        cost_resource=cost_resource.strip(),
        document=document,
    )
    if problems:
        raise MappingError(name, problems, mapping=mapping)
    return mapping


def _activity_name(raw, where: str, problems: list[str]) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        problems.append(f"{where}: activity names must be non-empty text")
        return None
    if len(raw.strip()) > 200:
        problems.append(f"{where}: the activity name '{raw[:40]}...' is longer than 200 characters")
        return None
    return raw.strip()


def _parse_steps(raw, problems: list[str]) -> dict[str, StepTarget]:
    if raw is None:
        problems.append("'steps' is missing: map at least one source activity to a step code")
        return {}
    if not isinstance(raw, dict) or not raw:
        problems.append("'steps' must be an object mapping activity names to step codes, with at least one entry")
        return {}
    steps: dict[str, StepTarget] = {}
    for raw_name, value in raw.items():
        activity = _activity_name(raw_name, "steps", problems)
        if activity is None:
            continue
        where = f"steps['{activity}']"
        quantities: list[tuple[str, Decimal]] = []
        if isinstance(value, MappingABC):
            unknown = set(value) - {"step", "quantities"}
            if unknown:
                problems.append(f"{where}: unknown key {', '.join(sorted(unknown))} (use 'step' and 'quantities')")
            code = value.get("step")
            raw_quantities = value.get("quantities", {})
            if not isinstance(raw_quantities, MappingABC):
                problems.append(f"{where}: 'quantities' must map resource codes to quantities")
                raw_quantities = {}
            for resource, amount in raw_quantities.items():
                try:
                    quantity = Decimal(str(amount))
                except InvalidOperation:
                    problems.append(f"{where}: the quantity of {resource} ({amount!r}) is not a number")
                    continue
                if not quantity.is_finite() or quantity < 0:
                    problems.append(f"{where}: the quantity of {resource} must be zero or more")
                    continue
                quantities.append((str(resource), quantity))
        else:
            code = value
        if not isinstance(code, str) or not STEP_CODE_RE.match(code):
            problems.append(f"{where}: {code!r} is not a step code (capital letters, digits and hyphens, e.g. BLOODS)")
            continue
        steps[activity] = StepTarget(step_code=code, quantities=tuple(quantities))
    return steps


def _parse_outcomes(raw, problems: list[str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        problems.append("'outcomes' must be an object mapping activity names to an outcome")
        return {}
    outcomes = {}
    for raw_name, value in raw.items():
        activity = _activity_name(raw_name, "outcomes", problems)
        if activity is None:
            continue
        if value not in OUTCOMES:
            problems.append(
                f"outcomes['{activity}']: {value!r} is not an outcome CommonPath records "
                f"(use one of: {', '.join(OUTCOMES)})"
            )
            continue
        outcomes[activity] = value
    return outcomes


def _parse_ignore(raw, problems: list[str]) -> list[str]:
    if not isinstance(raw, list):
        problems.append("'ignore' must be a list of activity names")
        return []
    names = []
    for value in raw:
        activity = _activity_name(value, "ignore", problems)
        if activity is not None:
            names.append(activity)
    return names
