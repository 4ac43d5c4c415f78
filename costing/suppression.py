"""Who sees which report figures: named individuals, and small cells for managers.

DOMAIN.md: individual figures are private by default. A clinician sees their own
named figures; a clinical lead sees their team's individuals; managers and
finance see organisational units only, and any cell covering 1 to
``SMALL_CELL_MAX`` (7) episodes is shown as ``*`` in their views, exports and API
responses.

Suppressing a small cell is not enough when the table also shows a total: the
total minus the visible rows would give the hidden one back. So once a row is
hidden, more rows are hidden (the smallest first) until the hidden rows together
cover more than ``SMALL_CELL_MAX`` episodes, so that differencing reveals only an
aggregate that is itself not small; if the rows run out first, the total is
hidden too. The same holds within each group of rows that make up a known total
(an outcome's "with" and "without" rows add up to all episodes), and a Pareto's
running share is hidden from the first hidden row on (its steps would give each
hidden share back). Where an episode can be in several rows (variances by type),
the rule counts episodes per row, which errs towards hiding more.

A cell can come from fewer episodes than its row: a pathway's system-caused
variance may be one episode's, among hundreds costed. Such rows carry ``cells``,
each value column's own count of contributing episodes, and the same rules apply
per column: a figure from 1 to 7 episodes is hidden, more of the column is hidden
(the fewest contributors first) until the hidden cells together come from more
than 7 episodes, and the total's cell is hidden if they run out. The counts of
hidden cells are hidden with them.

A figure a report shows in two places is hidden in both or in neither: the system-caused
variance is a row of "Variance by cause" and a column of the cost tables. Its row is the
last one hidden to protect a small cause, and if it must go, the column goes everywhere.

Two tables repeat another's figures: "Length of stay against expected" is "by pathway"'s rows
and hides exactly what that table hides; a top cost driver is part of its step's row in "Cost
by step" and is hidden wherever that row's variance or its parts are.

A clinician who is not a lead sees their own row per unit, and the unit's row: the difference
is their colleagues'. Unit rows are hidden where it would be one colleague's figures or 1 to 7
episodes, with complementary units as above (``_colleagues_protected``).

The stored ``ReportRun.result`` holds everything; these functions shape a copy for
one viewer. Views, exports and the API all go through ``result_for``.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings

from accounts.permissions import EPISODE_ROLES, Role, unit_ids_for

from .reports import STEP_UNITS, SYSTEM_APART

SUPPRESSED = "*"
CUMULATIVE = "cumulative"


def is_small(episodes) -> bool:
    return isinstance(episodes, int) and 0 < episodes <= settings.SMALL_CELL_MAX


@dataclass(frozen=True)
class Audience:
    """How one person may see one report."""

    user_id: int | None
    suppress: bool
    # Units whose clinicians' named figures this person may see (clinical lead, admin).
    team_unit_ids: frozenset[int] = field(default_factory=frozenset)
    # May follow a drill-down to individual episodes (clinician, lead, admin).
    can_open_episodes: bool = False

    @property
    def lens_default(self) -> str:
        return "cost" if self.suppress else "clinical"


def audience_for(user, org_unit_id: int | None) -> Audience:
    """The privacy rules for ``user`` reading a report on ``org_unit_id`` (and its subtree).

    Small cells are suppressed unless the user holds a clinical role (clinician,
    clinical lead, admin) over the whole unit the report covers.
    """
    clinical_units = set(unit_ids_for(user, *EPISODE_ROLES))
    return Audience(
        user_id=user.pk,
        suppress=org_unit_id not in clinical_units,
        team_unit_ids=frozenset(unit_ids_for(user, Role.CLINICAL_LEAD, Role.ADMIN)),
        can_open_episodes=bool(clinical_units),
    )


def _value_keys(table: dict) -> list[str]:
    return [c["key"] for c in table["columns"] if c["key"] != "label"]


# What names a row rather than measures it: kept when its figures are hidden.
_IDENTIFYING = frozenset(
    {"key", "label", "group", "pathway", "unit", "org_unit_id", "nature", "resource", "suppressed", "shown_elsewhere"}
)


def _hide(row: dict, keys: list[str]) -> None:
    """Hide every figure of ``row``: its columns' and any other it carries (the API shows those)."""
    for key in {*keys, *row} - _IDENTIFYING - {"cells"}:
        row[key] = SUPPRESSED
    row["suppressed"] = True
    for key in row.get("cells") or {}:
        row["cells"][key] = SUPPRESSED


def _complement(rows: list[dict], hidden: set[int], members: list[int]) -> bool:
    """Hide more of ``members`` until the hidden ones cover enough episodes; False if they ran out."""
    limit = settings.SMALL_CELL_MAX

    def covered():
        return sum(rows[i]["episodes"] for i in members if i in hidden)

    while any(i in hidden for i in members) and covered() <= limit:
        visible = [i for i in members if i not in hidden]
        if not visible:
            return False
        # Rows that add episodes to the cover first, smallest first; rows of no episodes only
        # when those run out (hidden, a reader cannot tell they are nothing); last, a row whose
        # figure the report shows elsewhere too, which hidden here protects nothing.
        hidden.add(
            min(
                visible,
                key=lambda i: (bool(rows[i].get("shown_elsewhere")), not rows[i]["episodes"], rows[i]["episodes"], i),
            )
        )
    return True


def suppress_table(table: dict) -> dict:
    """A copy of ``table`` with small cells, and the cells that would reveal them, hidden."""
    table = copy.deepcopy(table)
    rows = table["rows"]
    keys = _value_keys(table)
    hidden = {i for i, row in enumerate(rows) if is_small(row.get("episodes"))}
    total = table.get("total")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if "group" in row:
            groups.setdefault(row["group"], []).append(i)
    enough = True
    if groups:
        for members in groups.values():
            enough = _complement(rows, hidden, members) and enough
    elif total is not None:
        enough = _complement(rows, hidden, list(range(len(rows))))
    # Rows that add up to a known figure: each group, or all rows when there is a total.
    parts = list(groups.values()) if groups else ([list(range(len(rows)))] if total is not None else [])
    cells_hidden = _suppress_cells(rows, hidden, total, parts)
    for i in sorted(hidden):
        _hide(rows[i], keys)
    cumulative = [c["key"] for c in table["columns"] if c["kind"] == CUMULATIVE]
    if cumulative and hidden:
        for row in rows[min(hidden) :]:
            for key in cumulative:
                row[key] = SUPPRESSED
    if total is not None and (not enough or is_small(total.get("episodes"))):
        if total.get("shown_elsewhere"):
            # A total the page shows anyway (a step's own row above its units) cannot be hidden:
            # with too few rows to hide a small one among, every row goes instead.
            for row in rows:
                _hide(row, keys)
            hidden = set(range(len(rows)))
        else:
            _hide(total, [k for k in keys if k in total])
    table["suppressed"] = bool(hidden) or cells_hidden or bool(total and total.get("suppressed"))
    return table


# Figures of a row that add up to another it shows: its variance (actual less expected) is
# price + usage + length of stay. One of them hidden alone would come back as the variance
# less the other two, so they are hidden together, in a row and in a total.
ADDING_UP = ("price", "usage", "los")


def with_parts(keys: set[str], present) -> set[str]:
    """``keys``, and the rest of ``ADDING_UP`` among ``present`` when one of them is in ``keys``."""
    return keys | {key for key in ADDING_UP if key in present} if keys & set(ADDING_UP) else keys


def _suppress_cells(rows: list[dict], hidden_rows: set[int], total: dict | None, parts: list[list[int]]) -> bool:
    """Hide the figures that come from 1 to 7 episodes although their row covers more; True if any.

    Runs before the hidden rows are blanked: a hidden row's figures still count as protection.
    The figures that add up (``ADDING_UP``) are hidden together, and each of them, once hidden,
    must not come back from the known total either: the hidden ones of a column are then at
    least two rows (a hidden row counts), so that differencing gives only their sum, and that
    sum comes from more than 7 episodes. Hiding more may hide more again, until nothing changes.
    """
    keys = sorted({key for row in rows for key in row.get("cells") or {}})
    together = [key for key in ADDING_UP if key in keys]

    def count(i: int, key: str) -> int:
        return (rows[i].get("cells") or {}).get(key) or 0

    hidden = {key: {i for i in range(len(rows)) if i not in hidden_rows and is_small(count(i, key))} for key in keys}
    total_hidden = {key for key in keys if total is not None and is_small((total.get("cells") or {}).get(key))}
    changed = True
    while changed:
        changed = False
        for i in {i for key in together for i in hidden[key]}:
            for key in together:
                if i not in hidden[key]:
                    hidden[key].add(i)
                    changed = True
        if (widened := with_parts(total_hidden, together)) != total_hidden:
            total_hidden = widened
            changed = True
        for key in keys:
            for members in parts:
                # Rows already hiding some of the parts are hidden first: they lose nothing more.
                prefer = {i for k in together for i in hidden[k]} if key in together else set()
                changed = _protect(key, members, hidden[key], hidden_rows, key in together, count, prefer) or changed
                if (
                    total is not None
                    and key not in total_hidden
                    and _exposed(key, members, hidden[key], hidden_rows, key in together, count)[0]
                ):
                    total_hidden.add(key)  # no cell left to hide: the known figure goes instead
                    changed = True
    for key in keys:
        for i in hidden[key]:
            _hide_cell(rows[i], key)
        if key in total_hidden:
            _hide_cell(total, key)
    return any(hidden.values()) or any(total is not None and total.get(key) == SUPPRESSED for key in keys)


def _exposed(key, members, hidden, hidden_rows, together, count) -> tuple[bool, list[int]]:
    """Whether differencing ``members`` against their known figure could give a hidden cell back."""
    limit = settings.SMALL_CELL_MAX
    if together:
        covering = [i for i in members if i in hidden or i in hidden_rows]
        if not any(i in hidden for i in members):
            return False, covering
        contributors = sum(count(i, key) for i in covering)
        return len(covering) < 2 or 0 < contributors <= limit, covering
    protected = [i for i in members if i in hidden or (i in hidden_rows and count(i, key))]
    return bool(protected) and sum(count(i, key) for i in protected) <= limit, protected


def _candidates(key, members, hidden, hidden_rows, together, count, covering) -> list[int]:
    """Cells that may be hidden next: any visible one when only the number of hidden cells falls short."""
    visible = [i for i in members if i not in hidden and i not in hidden_rows]
    contributors = sum(count(i, key) for i in covering)
    if together and not 0 < contributors <= settings.SMALL_CELL_MAX:
        return visible
    return [i for i in visible if count(i, key)]


def _protect(key, members, hidden, hidden_rows, together, count, prefer) -> bool:
    """Hide more cells of ``members`` in column ``key`` (``prefer``'s, then the fewest contributors first)."""
    added = False
    while True:
        exposed, covering = _exposed(key, members, hidden, hidden_rows, together, count)
        candidates = _candidates(key, members, hidden, hidden_rows, together, count, covering) if exposed else []
        if not candidates:
            break
        hidden.add(min(candidates, key=lambda i: (i not in prefer, count(i, key), i)))
        added = True
    return added


def _hide_cell(row: dict, key: str) -> None:
    if key in row:
        row[key] = SUPPRESSED
    if key in (row.get("cells") or {}):
        row["cells"][key] = SUPPRESSED


def result_for(result: dict | None, audience: Audience) -> dict | None:
    """What ``audience`` may see of a stored report result."""
    if result is None:
        return None
    # Each step's units are read by the step's drill-down, which suppresses them itself.
    shown = copy.deepcopy({key: value for key, value in result.items() if key != STEP_UNITS})
    tables = {}
    stored = shown.get("tables", {})
    for key, table in stored.items():
        if table.get("individual"):
            table = _individuals(table, audience)
            if table is None:
                continue
        elif audience.suppress and COPIES.get(key) not in stored:
            table = suppress_table(table)
        tables[key] = table
    shown["tables"] = tables
    summary = shown.get("summary") or {}
    if "by_clinician" in stored and _scope_exposed(result["tables"]["by_clinician"], audience):
        # A team of two: every figure of the scope, less the viewer's own, is the colleague's.
        shown["tables"] = {key: table for key, table in tables.items() if table.get("individual")}
        for key in list(summary):
            if key != "label":
                summary[key] = SUPPRESSED
        summary["suppressed"] = True
        shown.pop("period", None)
        shown["notes"] = [*shown.get("notes", []), TEAM_TOO_SMALL]
        shown["suppressed"] = audience.suppress
        return shown
    if "by_unit" in tables and "by_clinician" in stored:
        # Every clinician's row, as stored (the shown copy keeps only the viewer's): read, not shown.
        _colleagues_protected(tables["by_unit"], result["tables"]["by_clinician"], audience)
    if audience.suppress:
        _hidden_everywhere(tables, summary)
        for key, source in COPIES.items():
            if key in tables and source in tables:
                _hidden_as_in(tables[key], tables[source])
        if "drivers" in tables:
            _drivers_hidden_with_steps(tables["drivers"], tables.get("by_step"))
    if audience.suppress and is_small(summary.get("episodes")):
        for key in list(summary):
            if key != "label":
                summary[key] = SUPPRESSED
        summary["suppressed"] = True
    elif audience.suppress:
        cells = summary.get("cells") or {}
        for key in with_parts({key for key, episodes in cells.items() if is_small(episodes)}, cells):
            _hide_cell(summary, key)
    if audience.suppress and "period" in shown and is_small(shown["period"].get("actual_episodes")):
        shown.pop("period")
    shown["suppressed"] = audience.suppress
    return shown


# Tables whose rows are another's rows, fewer columns (same keys, same figures): the length of
# stay against expected is "by pathway"'s episodes, stays and length-of-stay variance. Suppressed
# on their own, the two could hide different cells of one figure and together show both.
COPIES = {"los": "by_pathway"}


def _hidden_as_in(table: dict, source: dict) -> None:
    """Hide in ``table`` exactly what ``source`` (already suppressed) hides of the same rows.

    A row or total that ``source`` lacks, or a figure it does not carry, is hidden: a result
    stored before the two were kept consistent must not show what it cannot check.
    """
    by_key = {row["key"]: row for row in source["rows"]}
    pairs = [(row, by_key.get(row["key"])) for row in table["rows"]]
    if table.get("total") is not None:
        pairs.append((table["total"], source.get("total")))
    keys = _value_keys(table)
    for row, shown in pairs:
        if shown is None or shown.get("suppressed"):
            _hide(row, keys)
            continue
        for key in set(row) - _IDENTIFYING - {"cells"}:
            if shown.get(key, SUPPRESSED) == SUPPRESSED:
                _hide_cell(row, key)
        for key in row.get("cells") or {}:
            if (shown.get("cells") or {}).get(key, SUPPRESSED) == SUPPRESSED or shown.get(key) == SUPPRESSED:
                _hide_cell(row, key)
    table["suppressed"] = any(
        value == SUPPRESSED for row, _ in pairs for key, value in row.items() if key not in _IDENTIFYING
    )


def _drivers_hidden_with_steps(drivers: dict, steps: dict | None) -> None:
    """A cost driver is a step's resource: hidden wherever its step's row in "Cost by step" is.

    A step's drivers add up to (part of) its variance, and a driver's variance is its share of the
    step's price, usage and length-of-stay variance: shown beside a step whose variance or parts
    are hidden, it would give them back. A driver without ``cells`` was stored when its episodes
    were every episode with the line, not those its variance comes from: hidden, as it cannot be
    checked.
    """
    by_key = {row["key"]: row for row in (steps or {}).get("rows", [])}
    keys = _value_keys(drivers)
    for row in drivers["rows"]:
        step = by_key.get(row["key"])
        if "cells" not in row or step is None or step.get("suppressed"):
            _hide(row, keys)
        elif any(step.get(key) == SUPPRESSED for key in ("variance", *ADDING_UP)):
            _hide_cell(row, "variance")
        else:
            continue
        drivers["suppressed"] = True


def _hidden_everywhere(tables: dict, summary: dict) -> None:
    """A figure hidden where it is one row is hidden in every table that shows it as a column.

    The system-caused variance is a row of "Variance by cause" and a column of the cost
    tables. Hidden in the first (its rows ran out of others to hide with a small one), it
    would come back from the second's total, or from the sum of its rows: the whole column
    goes, in the summary too.
    """
    keys = {
        row["key"]
        for table in tables.values()
        for row in table["rows"]
        if row.get("shown_elsewhere") and row.get("suppressed")
    }
    for key in keys:
        for table in tables.values():
            for row in [*table["rows"], table.get("total")]:
                if row is not None and key in row and row[key] != SUPPRESSED:
                    _hide_cell(row, key)
                    table["suppressed"] = True
        _hide_cell(summary, key)


def _own_and_others(clinicians: dict, audience: Audience) -> tuple[dict, dict, dict]:
    """Per unit outside the viewer's team: their own episodes, everybody else's, and the others' names."""
    own: dict[int, int] = defaultdict(int)
    others: dict[int, int] = defaultdict(int)
    named: dict[int, set] = defaultdict(set)
    for row in clinicians["rows"]:
        unit_id, episodes = row.get("org_unit_id"), row.get("episodes") or 0
        if unit_id in audience.team_unit_ids:
            continue  # a lead sees every individual of their team: nothing there to work out
        if audience.user_id is not None and row.get("clinician_id") == audience.user_id:
            own[unit_id] += episodes
        elif episodes:
            others[unit_id] += episodes
            if row.get("clinician_id") is not None:
                named[unit_id].add(row["clinician_id"])
    return own, others, named


TEAM_TOO_SMALL = (
    "Your team's figures are not shown to you: besides your own, they are one colleague's (or fewer than "
    "8 episodes), and they would give that away. You see your own figures; your clinical lead sees the team's."
)


def _scope_exposed(clinicians: dict, audience: Audience) -> bool:
    """Whether the whole report, less the viewer's own rows, is one colleague's figures or a small cell.

    Then no table but the viewer's own can be shown to them: the summary, and any table that totals
    the scope (by pathway, by month, by step), less their own figures, would give the colleague's.
    Only for a viewer who leads no unit of the report.
    """
    if audience.team_unit_ids:
        return False
    own, others, named = _own_and_others(clinicians, audience)
    if not sum(own.values()):
        return False
    episodes = sum(others.values())
    colleagues = set().union(*named.values()) if named else set()
    return 0 < episodes <= settings.SMALL_CELL_MAX or (episodes > 0 and len(colleagues) == 1)


def _colleagues_protected(units: dict, clinicians: dict, audience: Audience) -> None:
    """Hide the unit figures from which a clinician could subtract their own and get a colleague's.

    A clinician who is not the unit's lead sees their own row in "Clinicians" (per unit), and the
    unit's row: the unit less their own is everybody else's. That is hidden when it is one other
    named clinician's figures, or comes from 1 to 7 episodes. Then, as for small cells, other units
    are hidden with it (fewest other episodes first) until the hidden units, less the viewer's own
    rows in them, are more than 7 episodes of at least two other clinicians; if the units run out,
    the table's total goes too. The report's summary still gives the whole scope less the viewer's
    own: that cannot be protected by hiding cells, see README.
    """
    own, others, named = _own_and_others(clinicians, audience)
    if not own:
        return
    rows = units["rows"]
    unit_of = [row.get("org_unit_id") for row in rows]

    def exposed(members: set[int]) -> bool:
        """Whether these units' figures, less the viewer's own, are a colleague's or a small cell."""
        units_in = {unit_of[i] for i in members}
        if not sum(own[u] for u in units_in):
            return False
        episodes = sum(others[u] for u in units_in)
        colleagues = set().union(*(named[u] for u in units_in))
        return 0 < episodes <= settings.SMALL_CELL_MAX or (episodes > 0 and len(colleagues) == 1)

    # Units a lead sees whole protect nothing as cover: not candidates.
    candidates = [i for i, unit_id in enumerate(unit_of) if unit_id not in audience.team_unit_ids]
    exposing = {i for i in candidates if not rows[i].get("suppressed") and exposed({i})}
    hidden = exposing | {i for i in candidates if rows[i].get("suppressed")}
    if not exposing and not exposed(hidden):
        return
    enough = True
    while exposed(hidden):
        visible = [i for i in candidates if i not in hidden]
        if not visible:
            enough = False
            break
        hidden.add(min(visible, key=lambda i: (not others[unit_of[i]], others[unit_of[i]], i)))
    keys = _value_keys(units)
    for i in hidden:
        if not rows[i].get("suppressed"):
            _hide(rows[i], keys)
    if not enough and units.get("total") is not None:
        _hide(units["total"], [k for k in keys if k in units["total"]])
    units["suppressed"] = True


def _individuals(table: dict, audience: Audience) -> dict | None:
    """Named clinicians: one's own row, and a lead's (or admin's) team; managers see none."""
    rows = [
        row
        for row in table["rows"]
        if (audience.user_id is not None and row.get("clinician_id") == audience.user_id)
        or row.get("org_unit_id") in audience.team_unit_ids
    ]
    if not rows:
        return None
    table["rows"] = rows
    table["total"] = None
    if not table.get(SYSTEM_APART):
        _without_system_included(table)
    return table


# A per-clinician row's figures that, in a result stored before system-caused variance was
# shown apart (``SYSTEM_APART``), counted it as the clinician's.
SYSTEM_INCLUDED = frozenset(
    {
        "variance",
        "price",
        "usage",
        "los",
        "capacity",
        "with_variance",
        "with_variance_share",
        "variances",
        "unexplained",
    }
)


def _without_system_included(table: dict) -> None:
    """Withhold an old run's per-clinician figures that charged system-caused variance to the clinician."""
    table["columns"] = [c for c in table["columns"] if c["key"] not in SYSTEM_INCLUDED]
    for row in table["rows"]:
        for key in SYSTEM_INCLUDED:
            row.pop(key, None)
            (row.get("cells") or {}).pop(key, None)
    table["description"] = (
        "Computed before system-caused variance was left out of clinicians' figures: the figures that "
        "counted it as the clinician's are not shown. Run the report again to see them."
    )
