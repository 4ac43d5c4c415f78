"""Small cells (1-7 episodes) are hidden from managers and finance, and cannot be derived back."""

from decimal import Decimal

import pytest

from costing.reports import ReportParameters, cost_report, table, variance_report
from costing.suppression import SUPPRESSED, TEAM_TOO_SMALL, Audience, audience_for, result_for, suppress_table
from tests.costing.factories import generate_dataset, two_pathways

COLUMNS = [("label", "Unit", "text"), ("episodes", "Episodes", "int"), ("actual", "Actual", "money")]


def unit_table(*counts, total=True):
    rows = [
        {"key": f"U{i}", "label": f"Unit {i}", "episodes": n, "actual": str(n * 1000)} for i, n in enumerate(counts)
    ]
    whole = {"label": "All", "episodes": sum(counts), "actual": str(sum(counts) * 1000)} if total else None
    return table("Units", COLUMNS, rows, total=whole, partition=True)


def shown(t):
    return [row["episodes"] for row in t["rows"]]


def test_it_hides_every_figure_of_a_row_covering_one_to_seven_episodes():
    t = suppress_table(unit_table(40, 7, 30, 25, total=False))

    assert shown(t) == [40, SUPPRESSED, 30, 25]
    assert t["rows"][1]["actual"] == SUPPRESSED
    assert t["rows"][1]["label"] == "Unit 1"  # which unit is hidden is not a secret; its figures are
    assert t["suppressed"] is True


def test_it_leaves_eight_or_more_and_empty_cells_alone():
    t = suppress_table(unit_table(8, 0, 30, total=True))
    assert shown(t) == [8, 0, 30]
    assert t["total"]["episodes"] == 38
    assert t["suppressed"] is False


def test_it_hides_a_second_row_so_the_total_cannot_give_the_first_back():
    t = suppress_table(unit_table(40, 3, 30, 12))

    # 3 alone could be worked out as total - 40 - 30 - 12; hiding the next smallest (12)
    # leaves only their sum (15 episodes, not a small cell) derivable.
    assert shown(t) == [40, SUPPRESSED, 30, SUPPRESSED]
    assert t["total"]["episodes"] == 85
    visible = sum(row["episodes"] for row in t["rows"] if row["episodes"] != SUPPRESSED)
    assert t["total"]["episodes"] - visible > 7


def test_it_keeps_hiding_until_the_hidden_rows_cover_more_than_seven_episodes():
    t = suppress_table(unit_table(2, 3, 2, 50, 60))
    # 2 + 3 + 2 = 7 would still be a small cell by difference: the 50 goes too.
    assert shown(t) == [SUPPRESSED, SUPPRESSED, SUPPRESSED, SUPPRESSED, 60]
    assert t["total"]["episodes"] == 117


def test_it_hides_the_total_when_no_other_row_can_protect_the_small_one():
    t = suppress_table(unit_table(5, 2))
    assert shown(t) == [SUPPRESSED, SUPPRESSED]
    assert t["total"]["episodes"] == SUPPRESSED
    assert t["total"]["actual"] == SUPPRESSED


def test_it_hides_a_paretos_running_share_from_the_first_hidden_row_on():
    columns = [("label", "Type", "text"), ("variances", "Variances", "int"), ("cumulative", "Cumulative", "cumulative")]
    rows = [
        {"key": "a", "label": "A", "variances": 50, "episodes": 40, "cumulative": "0.5"},
        {"key": "b", "label": "B", "variances": 30, "episodes": 25, "cumulative": "0.8"},
        {"key": "c", "label": "C", "variances": 12, "episodes": 5, "cumulative": "0.92"},
        {"key": "d", "label": "D", "variances": 8, "episodes": 8, "cumulative": "1.0"},
    ]
    t = suppress_table(table("Types", columns, rows, total={"label": "All", "variances": 100, "episodes": 78}))

    assert [r["cumulative"] for r in t["rows"]] == ["0.5", "0.8", SUPPRESSED, SUPPRESSED]
    assert [r["variances"] for r in t["rows"]] == [50, 30, SUPPRESSED, SUPPRESSED]


def test_it_protects_with_and_without_rows_of_an_outcome_together():
    columns = [("label", "Episodes", "text"), ("episodes", "Episodes", "int"), ("avg_los", "Stay", "number")]
    rows = [
        {"key": "delay/with", "group": "delay", "label": "with", "episodes": 4, "avg_los": "9.00"},
        {"key": "delay/without", "group": "delay", "label": "without", "episodes": 96, "avg_los": "4.00"},
        {"key": "early/with", "group": "early", "label": "with", "episodes": 20, "avg_los": "4.10"},
        {"key": "early/without", "group": "early", "label": "without", "episodes": 80, "avg_los": "4.30"},
    ]
    t = suppress_table(table("Outcomes", columns, rows))
    assert shown(t) == [SUPPRESSED, SUPPRESSED, 20, 80]


# --- who sees what in a real report -----------------------------------------------------------------


CAUSE_COLUMNS = [*COLUMNS, ("system", "System-caused", "variance")]


def system_table(*rows):
    """Units as (episodes, system-caused variance, episodes that variance comes from)."""
    body = [
        {"key": f"U{i}", "label": f"Unit {i}", "episodes": n, "actual": str(n * 1000), "system": str(v),
         "cells": {"system": c}}
        for i, (n, v, c) in enumerate(rows)
    ]  # fmt: skip
    whole = {
        "label": "All",
        "episodes": sum(n for n, _v, _c in rows),
        "actual": str(sum(n for n, _v, _c in rows) * 1000),
        "system": str(sum(v for _n, v, c in rows)),
        "cells": {"system": sum(c for _n, _v, c in rows)},
    }
    return table("Units", CAUSE_COLUMNS, body, total=whole, partition=True)


def test_it_hides_a_figure_that_comes_from_one_episode_in_a_row_of_many():
    t = suppress_table(system_table((120, 3017, 1), (90, 0, 0), (60, 1500, 30)))

    first = t["rows"][0]
    assert (first["episodes"], first["actual"]) == (120, "120000")  # the row itself is not small
    assert (first["system"], first["cells"]["system"]) == (SUPPRESSED, SUPPRESSED)
    # Total minus the visible rows would give the hidden figure back: the next contributor goes too.
    assert t["rows"][2]["system"] == SUPPRESSED
    assert t["rows"][1]["system"] == "0"  # nothing to protect or to reveal
    assert t["total"]["system"] == "4517"
    assert t["suppressed"] is True


def test_it_hides_the_column_total_when_no_other_cell_can_protect_the_small_one():
    t = suppress_table(system_table((120, 3017, 1), (90, 0, 0)))

    assert t["rows"][0]["system"] == SUPPRESSED
    assert t["total"]["system"] == SUPPRESSED
    assert t["total"]["actual"] == "210000"


def test_a_hidden_rows_few_contributors_are_protected_in_each_column():
    # Unit 0 (5 episodes) is hidden whole; with it Unit 1 (4), so 9 episodes are hidden. But Unit 0's
    # system-caused figure comes from one episode and Unit 1 has none: total minus the visible
    # rows would give it back, so another unit's system-caused figure is hidden as well.
    t = suppress_table(system_table((5, 800, 1), (4, 0, 0), (50, 900, 12), (60, 2000, 20)))

    assert [row["episodes"] for row in t["rows"]] == [SUPPRESSED, SUPPRESSED, 50, 60]
    assert [row["system"] for row in t["rows"]] == [SUPPRESSED, SUPPRESSED, SUPPRESSED, "2000"]
    assert t["rows"][0]["cells"]["system"] == SUPPRESSED


PARTS = ("price", "usage", "los")
PART_COLUMNS = [*COLUMNS, ("variance", "Variance", "variance"), *[(k, k.title(), "variance") for k in PARTS]]


def parts_table(*rows, total=True):
    """Months as (episodes, {part: (amount, episodes it comes from)}); a row's variance is its parts' sum."""
    body = []
    for i, (n, parts) in enumerate(rows):
        row = {"key": f"M{i}", "label": f"Month {i}", "episodes": n, "actual": str(n * 1000)}
        row.update({k: str(parts[k][0]) for k in PARTS}, variance=str(sum(parts[k][0] for k in PARTS)))
        row["cells"] = {k: parts[k][1] for k in PARTS}
        body.append(row)
    whole = None
    if total:
        whole = {"label": "All", "episodes": sum(n for n, _p in rows), "actual": str(sum(n for n, _p in rows) * 1000)}
        whole.update({k: str(sum(p[k][0] for _n, p in rows)) for k in PARTS})
        whole["variance"] = str(sum(p[k][0] for _n, p in rows for k in PARTS))
        whole["cells"] = {k: sum(p[k][1] for _n, p in rows) for k in PARTS}
    return table("Months", PART_COLUMNS, body, total=whole, partition=True)


def month(n, price=(0, 0), usage=(0, 0), los=(0, 0)):
    return (n, {"price": price, "usage": usage, "los": los})


def test_a_variance_part_from_few_episodes_hides_the_other_parts_of_its_row():
    # Variance 919 = price 0 + usage 43 (3 episodes) + length of stay 876 (20 episodes): with usage
    # alone hidden, the variance less the other two would give it back (a manager's dashboard did).
    t = suppress_table(parts_table(month(40, usage=(43, 3), los=(876, 20)), total=False))

    row = t["rows"][0]
    assert [row[k] for k in PARTS] == [SUPPRESSED] * 3
    assert (row["episodes"], row["actual"], row["variance"]) == (40, "40000", "919")  # not small themselves


def test_hidden_parts_cannot_come_back_from_the_total_either():
    t = suppress_table(
        parts_table(
            month(40, usage=(43, 3), los=(876, 20)),
            month(35, price=(10, 9), usage=(500, 12), los=(300, 15)),
            month(50, price=(-20, 10), usage=(700, 30), los=(100, 9)),
        )
    )

    rows = t["rows"]
    # Total minus the visible rows gives only what the hidden rows add up to: two rows at least
    # (the one with the fewest length-of-stay episodes joins the first), every part hidden in both,
    # and each part's hidden cells from more than 7 episodes (usage: 3 + 30).
    assert [[row[k] for k in PARTS] for row in rows] == [[SUPPRESSED] * 3, ["10", "500", "300"], [SUPPRESSED] * 3]
    assert [t["total"][k] for k in PARTS] == ["-10", "1243", "1276"]


def test_the_total_hides_all_parts_when_no_other_row_can_protect_them():
    t = suppress_table(parts_table(month(40, usage=(43, 3), los=(876, 20)), month(30, los=(50, 10))))

    # The second row has no usage to hide, but it is hidden with the first (two rows at least)...
    assert [t["rows"][1][k] for k in PARTS] == [SUPPRESSED] * 3
    # ...and the usage of both together comes from 3 episodes only: the total's parts go.
    assert [t["total"][k] for k in PARTS] == [SUPPRESSED] * 3
    assert t["total"]["variance"] == "969"


@pytest.mark.django_db
def test_no_managers_cost_figure_comes_from_one_to_seven_episodes_or_can_be_worked_out(reports, org, carol):
    _variance, cost = reports
    seen = result_for(cost, audience_for(carol, org["SURG"].pk))
    checked = 0
    for key, t in seen["tables"].items():
        for row in [*t["rows"], t.get("total") or {}]:
            for column, episodes in (row.get("cells") or {}).items():
                checked += 1
                assert episodes == SUPPRESSED or not 0 < episodes <= 7, (key, row["label"], column)
                if episodes == SUPPRESSED:
                    assert row[column] == SUPPRESSED, (key, row["label"], column, row)
        if t.get("total") is None or not t.get("partition"):
            continue
        for column in {c for row in t["rows"] for c in row.get("cells") or {}}:
            hidden = [row for row in t["rows"] if row[column] == SUPPRESSED]
            if hidden and t["total"][column] != SUPPRESSED:
                # What differencing gives back is the sum of the hidden figures: it must come from > 7.
                stored = {row["key"]: row for row in cost["tables"][key]["rows"]}
                assert sum(stored[row["key"]]["cells"][column] for row in hidden) > 7, (key, column)
    assert checked > 20
    for column, episodes in seen["summary"]["cells"].items():
        assert episodes == SUPPRESSED or not 0 < episodes <= 7, column
    # The system-caused variance is a row of one table and a column of others: shown in all, or in none.
    system = {next(r["amount"] for r in seen["tables"]["by_cause"]["rows"] if r["key"] == "system")}
    system |= {t["total"]["system"] for t in seen["tables"].values() if t.get("total") and "system" in t["total"]}
    assert len(system) == 1, system
    # The length of stay table shows by pathway's rows: a figure hidden in one is hidden in the other.
    by_pathway, los = seen["tables"]["by_pathway"], seen["tables"]["los"]
    same = {row["key"]: row for row in by_pathway["rows"]}
    for row, other in [*((r, same[r["key"]]) for r in los["rows"]), (los["total"], by_pathway["total"])]:
        assert [row[k] for k in ("episodes", "avg_los", "los")] == [other[k] for k in ("episodes", "avg_los", "los")]
    # A cost driver's variance is shown only from more than 7 episodes, beside a step that shows its own.
    steps = {row["key"]: row for row in seen["tables"]["by_step"]["rows"]}
    for row in seen["tables"]["drivers"]["rows"]:
        if row["variance"] != SUPPRESSED:
            assert not 0 < row["episodes"] <= 7, row
            assert SUPPRESSED not in [steps[row["key"]][k] for k in ("variance", *PARTS)], row
    # The parts of a variance are hidden together, or the variance less the others gives one back.
    for row in [seen["summary"], *(r for t in seen["tables"].values() for r in [*t["rows"], t.get("total") or {}])]:
        parts = [row[k] == SUPPRESSED for k in PARTS if k in (row.get("cells") or {})]
        assert all(parts) or not any(parts), row.get("label")


@pytest.fixture
def reports(org, alice, bob, dora):
    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice, bob], n=160, seed=3)
    # A handful of episodes on Ward 7: a small cell for managers.
    generate_dataset(pathways=[hip], units=[org["ORTHO-W7"]], clinicians=[alice], n=5, seed=4, active_share=0)
    params = ReportParameters.from_dict({"org_unit": "SURG", "date_from": "2025-04-01", "date_to": "2026-03-31"})
    return variance_report(params), cost_report(params)


@pytest.mark.django_db
def test_a_manager_sees_units_with_small_cells_hidden_and_no_clinician_by_name(reports, org, carol, fred):
    variance, cost = reports
    for person in (carol, fred):
        audience = audience_for(person, org["SURG"].pk)
        assert audience.suppress and not audience.can_open_episodes
        for result in (variance, cost):
            seen = result_for(result, audience)
            assert "by_clinician" not in seen["tables"]
            units = {row["key"]: row for row in seen["tables"]["by_unit"]["rows"]}
            assert units["ORTHO-W7"]["episodes"] == SUPPRESSED
            # Trauma & Orthopaedics is the only other unit: hidden too, or it would give Ward 7 away.
            assert units["ORTHO"]["episodes"] == SUPPRESSED
            assert seen["summary"]["episodes"] > 7
            assert "Adeyemi" not in repr(seen) and "Okafor" not in repr(seen)


@pytest.mark.django_db
def test_a_clinician_sees_their_own_named_figures_only(reports, org, alice, bob):
    variance, cost = reports
    seen = result_for(cost, audience_for(alice, org["SURG"].pk))
    rows = seen["tables"]["by_clinician"]["rows"]
    assert {row["clinician_id"] for row in rows} == {alice.pk}
    assert {row["label"] for row in rows} == {"Dr Alice Adeyemi"}
    # Besides hers, every episode of the report is bob's: any figure of it, less her own, would be his.
    # She sees her own row and nothing of the team, on Surgery's report and on her specialty's alike.
    for unit in ("SURG", "ORTHO"):
        seen = result_for(cost, audience_for(alice, org[unit].pk))
        assert list(seen["tables"]) == ["by_clinician"]
        assert seen["summary"]["episodes"] == SUPPRESSED and seen["summary"]["suppressed"] is True
        assert seen["notes"][-1] == TEAM_TOO_SMALL
    assert result_for(cost, audience_for(bob, org["ORTHO"].pk))["summary"]["episodes"] == cost["summary"]["episodes"]


@pytest.mark.django_db
def test_a_clinical_lead_sees_the_individuals_of_their_team(reports, org, alice, bob, erin):
    variance, _ = reports
    seen = result_for(variance, audience_for(bob, org["ORTHO"].pk))
    names = {row["label"] for row in seen["tables"]["by_clinician"]["rows"]}
    assert names == {"Dr Alice Adeyemi", "Mr Bob Okafor"}
    assert seen["suppressed"] is False
    admin = result_for(variance, audience_for(erin, org["SURG"].pk))
    assert {row["label"] for row in admin["tables"]["by_clinician"]["rows"]} == names


def test_it_hides_the_whole_summary_of_a_report_on_seven_episodes_or_fewer():
    result = {
        "summary": {"label": "All", "episodes": 6, "actual": "1200"},
        "tables": {"by_unit": unit_table(6)},
    }
    seen = result_for(result, Audience(user_id=1, suppress=True))
    assert seen["summary"]["actual"] == SUPPRESSED
    assert seen["tables"]["by_unit"]["total"]["episodes"] == SUPPRESSED
    assert result["summary"]["actual"] == "1200"  # the stored result is untouched
    assert Decimal(result_for(result, Audience(user_id=1, suppress=False))["summary"]["actual"]) == 1200


def cause_table(**episodes):
    """Variance by cause as the cost report builds it: one row per cause, the system's shown elsewhere too."""
    rows = [
        {"key": cause, "label": cause, "amount": str(n * 100), "episodes": n}
        | ({"shown_elsewhere": True} if cause == "system" else {})
        for cause, n in episodes.items()
    ]
    whole = {"label": "Total variance", "amount": str(sum(episodes.values()) * 100), "episodes": 200}
    return table("Variance by cause", [("label", "Cause", "text"), ("amount", "Variance", "variance"),
                                      ("episodes", "Episodes", "int")], rows, total=whole)  # fmt: skip


def test_a_small_cause_is_protected_by_causes_the_report_shows_nowhere_else():
    # Community (2 episodes) is hidden; the system-caused figure is also every cost table's
    # "System-caused" column, so hiding it here would protect nothing: the next smallest other cause
    # goes instead. Causes of no episodes protect nothing and stay shown.
    t = suppress_table(cause_table(patient=0, clinician=0, system=30, community=2, unexplained=112, repeat=40))

    hidden = [row["key"] for row in t["rows"] if row.get("suppressed")]
    assert hidden == ["community", "repeat"]
    assert next(row for row in t["rows"] if row["key"] == "system")["amount"] == "3000"


def test_a_figure_hidden_where_it_is_a_row_is_hidden_wherever_it_is_a_column():
    # Only the system's row can protect the small community row: it is hidden, and with it the
    # "System-caused" column of every table (its total, or the sum of its rows, would give it back).
    causes = cause_table(system=30, community=2, unexplained=0)
    units = system_table((120, 3017, 20), (90, 1500, 10))
    report = {"summary": {"label": "All", "episodes": 210, "system": "4517", "cells": {"system": 30}},
              "tables": {"by_cause": causes, "by_unit": units}}  # fmt: skip

    seen = result_for(report, Audience(user_id=None, suppress=True))

    by_cause = {row["key"]: row for row in seen["tables"]["by_cause"]["rows"]}
    assert by_cause["system"]["amount"] == by_cause["community"]["amount"] == SUPPRESSED
    by_unit = seen["tables"]["by_unit"]
    assert [row["system"] for row in by_unit["rows"]] == [SUPPRESSED, SUPPRESSED]
    assert by_unit["total"]["system"] == SUPPRESSED
    assert by_unit["total"]["actual"] == "210000"  # only the one figure goes
    assert by_unit["suppressed"] is True
    assert seen["summary"]["system"] == SUPPRESSED
    # A reader who may see small cells sees everything.
    assert result_for(report, Audience(user_id=None, suppress=False))["summary"]["system"] == "4517"


def test_causes_of_no_episodes_are_hidden_as_cover_when_nothing_else_is_left():
    # Shown as zeros, they would say that all the variance (known from the summary) is the
    # small cause's: hidden, a reader cannot tell which cause it is.
    t = suppress_table(cause_table(patient=0, clinician=0, system=0, community=0, unexplained=3, repeat=0))

    assert all(row.get("suppressed") for row in t["rows"])
    assert t["total"]["amount"] == SUPPRESSED


def test_rows_under_a_total_shown_elsewhere_are_all_hidden_when_the_total_cannot_be():
    units = unit_table(52, 4)
    units["total"]["shown_elsewhere"] = True  # a step's own row, above its units on the same page

    t = suppress_table(units)

    # Hiding the 52 covers the 4 (56 episodes hidden): the total stays, as it is shown anyway.
    assert shown(t) == [SUPPRESSED, SUPPRESSED] and t["total"]["episodes"] == 56

    units = unit_table(4)
    units["total"]["shown_elsewhere"] = True
    t = suppress_table(units)
    # No other row to hide among: the total cannot be hidden (it is on the page), so the row goes.
    assert shown(t) == [SUPPRESSED] and t["total"]["episodes"] == 4


def pathway_row(key, n, los, los_episodes, usage=(0, 0)):
    return {
        "key": key, "label": key, "episodes": n, "actual": str(n * 1000),
        "variance": str(los + usage[0]), "price": "0", "usage": str(usage[0]), "los": str(los),
        "avg_los": "4.00", "avg_expected_los": "3.00", "over_los": los_episodes,
        "cells": {"price": 0, "usage": usage[1], "los": los_episodes},
    }  # fmt: skip


def los_of(row, cells=True):
    """The length-of-stay table's row for a pathway row; without ``cells`` as runs stored before they had them."""
    keys = ("key", "label", "episodes", "avg_los", "avg_expected_los", "over_los", "los")
    return {k: row[k] for k in keys if k in row} | ({"cells": {"los": row["cells"]["los"]}} if cells else {})


def cost_result(*rows, los_cells=True):
    whole = {
        "label": "All", "episodes": sum(r["episodes"] for r in rows),
        "actual": str(sum(int(r["actual"]) for r in rows)),
        "los": str(sum(Decimal(r["los"]) for r in rows)), "usage": str(sum(Decimal(r["usage"]) for r in rows)),
        "price": "0", "variance": str(sum(Decimal(r["variance"]) for r in rows)),
        "avg_los": "4.00", "avg_expected_los": "3.00", "over_los": sum(r["over_los"] for r in rows),
        "cells": {k: sum(r["cells"][k] for r in rows) for k in ("price", "usage", "los")},
    }  # fmt: skip
    money = [(k, k, "variance") for k in ("variance", "price", "usage", "los")]
    by_pathway = table("By pathway", [*COLUMNS, *money], list(rows), total=whole, partition=True)
    los_columns = [("label", "Pathway", "text"), ("episodes", "Episodes", "int"), ("avg_los", "Stay", "number"),
                   ("over_los", "Longer", "int"), ("los", "Length-of-stay variance", "variance")]  # fmt: skip
    los = table(
        "Length of stay", los_columns, [los_of(r, los_cells) for r in rows], total=los_of(whole, los_cells),
        partition=True,
    )  # fmt: skip
    return {
        "summary": {"label": "All", "episodes": whole["episodes"]},
        "tables": {"by_pathway": by_pathway, "los": los},
    }


@pytest.mark.parametrize("los_cells", [True, False], ids=["cells", "stored-before-cells"])
def test_the_length_of_stay_table_hides_what_by_pathway_hides_and_nothing_else(los_cells):
    # HIP's length-of-stay variance (696) comes from 7 episodes, TKR's usage from 3: by pathway hides
    # HIP's los, and with TKR's usage all of TKR's parts, so that neither comes back from the total.
    result = cost_result(
        pathway_row("HIP", 40, 696, 7, usage=(300, 20)),
        pathway_row("TKR", 60, 1044, 30, usage=(90, 3)),
        pathway_row("THR", 50, 360, 12, usage=(120, 15)),
        los_cells=los_cells,
    )

    seen = result_for(result, Audience(user_id=None, suppress=True))["tables"]

    by_pathway = {row["key"]: row["los"] for row in seen["by_pathway"]["rows"]}
    los = {row["key"]: row["los"] for row in seen["los"]["rows"]}
    assert by_pathway["HIP"] == SUPPRESSED
    assert los == by_pathway  # the same figure is hidden in both, or shown in both
    assert los["THR"] == "360"
    assert seen["los"]["total"]["los"] == seen["by_pathway"]["total"]["los"]
    assert [row["episodes"] for row in seen["los"]["rows"]] == [40, 60, 50]
    assert seen["los"]["suppressed"] is True
    # Nobody who may see small cells loses anything.
    whole = result_for(result, Audience(user_id=None, suppress=False))["tables"]["los"]
    assert [row["los"] for row in whole["rows"]] == ["696", "1044", "360"]


STEP_COLUMNS = [("label", "Step", "text"), ("episodes", "Episodes", "int"), ("variance", "Variance", "variance"),
                *[(k, k.title(), "variance") for k in PARTS]]  # fmt: skip
DRIVER_COLUMNS = [("label", "Step", "text"), ("resource", "Resource", "text"), ("episodes", "Episodes off plan", "int"),
                  ("actual", "Actual cost", "money"), ("variance", "Variance", "variance")]  # fmt: skip


def step(key, n, **parts):
    """A step of "Cost by step": ``parts`` as {part: (amount, episodes it comes from)}."""
    amounts = {k: parts.get(k, (0, 0)) for k in PARTS}
    return {"key": key, "group": key.split("/")[0], "label": key, "episodes": n,
            "variance": str(sum(a for a, _ in amounts.values())), **{k: str(a) for k, (a, _) in amounts.items()},
            "cells": {k: c for k, (_, c) in amounts.items()}}  # fmt: skip


def driver(key, resource, episodes, variance, cells=True):
    row = {"key": key, "group": key, "label": key, "resource": resource, "episodes": episodes,
           "actual": str(variance * 10), "variance": str(variance)}  # fmt: skip
    return row | ({"cells": {"variance": episodes}} if cells else {})


def drivers_seen(steps, drivers):
    result = {
        "summary": {"label": "All", "episodes": 120},
        "tables": {
            "by_step": table("Cost by step", STEP_COLUMNS, steps, link="step"),
            "drivers": table("Top cost drivers", DRIVER_COLUMNS, drivers, link="step"),
        },
    }
    seen = result_for(result, Audience(user_id=None, suppress=True))["tables"]
    return {row["key"]: row for row in seen["by_step"]["rows"]}, seen["drivers"]


def test_a_cost_driver_from_one_episode_is_hidden_and_so_are_its_steps_others():
    # One patient's dearer implant (200 more, one episode) among 40 operations: the operation's
    # price variance is hidden in "Cost by step", so its drivers cannot show it either; the
    # consultant's variance (20 episodes) would give the implant back from the step's variance.
    steps, drivers = drivers_seen(
        [
            step("TKR/OP", 40, price=(200, 1), usage=(300, 20)),
            step("TKR/WARD", 40, los=(1044, 12)),
            step("THR/PHYSIO", 40, usage=(56, 15)),
        ],  # fmt: skip
        [
            driver("TKR/OP", "Implant", 1, 200),
            driver("TKR/OP", "Consultant", 20, 300),
            driver("THR/PHYSIO", "Physiotherapist", 15, 56),
        ],  # fmt: skip
    )

    assert steps["TKR/OP"]["price"] == SUPPRESSED
    rows = {row["resource"]: row for row in drivers["rows"]}
    assert rows["Implant"]["variance"] == rows["Implant"]["episodes"] == SUPPRESSED
    assert rows["Consultant"]["variance"] == SUPPRESSED
    assert steps["THR/PHYSIO"]["usage"] == "56"
    assert (rows["Physiotherapist"]["episodes"], rows["Physiotherapist"]["variance"]) == (15, "56")
    assert drivers["suppressed"] is True


def test_a_cost_driver_stored_without_its_cells_is_hidden_as_it_cannot_be_checked():
    # Before drivers carried cells, their episodes were every episode with the line (40), not the
    # one the variance came from: nothing says whether it is a small cell.
    _steps, drivers = drivers_seen(
        [step("TKR/OP", 40, usage=(300, 20))], [driver("TKR/OP", "Implant", 40, 200, cells=False)]
    )

    assert drivers["rows"][0]["variance"] == drivers["rows"][0]["actual"] == SUPPRESSED
    assert drivers["rows"][0]["resource"] == "Implant"


def test_a_clinicians_figures_stored_with_system_caused_variance_in_them_are_withheld():
    # A run stored before system-caused variance was left out of clinicians' figures: its
    # "Variance" charged the clinician with 700 of system-caused cost. Not shown; the
    # system-caused figure, already apart, still is.
    columns = [("label", "Clinician", "text"), ("unit", "Unit", "text"), ("episodes", "Episodes", "int"),
               ("variance", "Variance", "variance"), ("system", "System-caused", "variance")]  # fmt: skip
    row = {"key": "1/ORTHO", "label": "Dr A", "unit": "T&O", "clinician_id": 1, "org_unit_id": 9, "episodes": 30,
           "variance": "900", "price": "700", "usage": "200", "los": "0", "system": "700",
           "cells": {"price": 1, "usage": 20, "los": 0, "system": 1}}  # fmt: skip
    stored = {"summary": {"label": "All", "episodes": 30}, "tables": {"by_clinician": table(
        "Clinicians", columns, [row], individual=True, description="System-caused variance is shown apart.")}}  # fmt: skip

    seen = result_for(stored, Audience(user_id=1, suppress=False))["tables"]["by_clinician"]

    assert [c["key"] for c in seen["columns"]] == ["label", "unit", "episodes", "system"]
    assert seen["rows"][0]["system"] == "700"
    assert not {"variance", "price", "usage", "los"} & set(seen["rows"][0])
    assert "Run the report again" in seen["description"]


# --- a clinician cannot subtract their own figures from their unit's -------------------------------

ME, BOB, CHEN, DEV = 1, 2, 3, 4


def clinicians_and_units(*units):
    """Units as (org unit id, {clinician id: episodes}); rows of "Clinicians" and "Organisational units"."""
    clinicians, unit_rows = [], []
    for unit_id, people in units:
        for who, n in people.items():
            clinicians.append({"key": f"{who}/{unit_id}", "label": f"Dr {who}", "unit": f"Unit {unit_id}",
                               "clinician_id": who, "org_unit_id": unit_id, "episodes": n, "actual": str(n * 1000)})  # fmt: skip
        n = sum(people.values())
        unit_rows.append({"key": f"U{unit_id}", "label": f"Unit {unit_id}", "org_unit_id": unit_id, "episodes": n,
                          "actual": str(n * 1000)})  # fmt: skip
    whole = {"label": "All", "episodes": sum(r["episodes"] for r in unit_rows),
             "actual": str(sum(int(r["actual"]) for r in unit_rows))}  # fmt: skip
    return {
        "summary": {"label": "All", "episodes": whole["episodes"]},
        "tables": {
            "by_unit": table("Units", COLUMNS, unit_rows, total=whole, partition=True),
            "by_clinician": table("Clinicians", COLUMNS, clinicians, individual=True),
        },
    }


def test_a_clinician_cannot_work_out_their_only_colleagues_figures_from_the_units():
    # Elective: my 24 episodes and Bob's 6. Elective less my row would be Bob's row: hidden, and Ward 7
    # with it (the smallest cover: 28 episodes of Chen and Dev), or the total less Ward 7 would give it
    # back. Spine, where I have no row, is a unit figure like any other.
    result = clinicians_and_units((10, {ME: 24, BOB: 6}), (11, {ME: 76, CHEN: 14, DEV: 14}), (12, {BOB: 20, CHEN: 20}))

    seen = result_for(result, Audience(user_id=ME, suppress=False))

    units = seen["tables"]["by_unit"]
    assert [row["episodes"] for row in units["rows"]] == [SUPPRESSED, SUPPRESSED, 40]
    assert units["rows"][0]["actual"] == SUPPRESSED
    assert units["total"]["episodes"] == 174  # less Spine and my rows: Bob, Chen and Dev's 34 episodes together
    assert units["suppressed"] is True
    assert [row["episodes"] for row in seen["tables"]["by_clinician"]["rows"]] == [24, 76]  # my own, whole


def test_a_colleagues_small_cell_or_only_colleague_hides_the_total_when_nothing_else_can_cover_it():
    # Only Bob besides me, in both units: whatever is hidden, the units less my rows are his.
    result = clinicians_and_units((10, {ME: 24, BOB: 6}), (11, {ME: 76, BOB: 28}))

    seen = result_for(result, Audience(user_id=ME, suppress=False))

    assert "by_unit" not in seen["tables"] and seen["notes"][-1] == TEAM_TOO_SMALL  # the whole report is his
    # Three colleagues but 5 episodes between them: a small cell by difference, hidden alike.
    result = clinicians_and_units((10, {ME: 40, BOB: 2, CHEN: 2, DEV: 1}), (11, {ME: 10, BOB: 9, CHEN: 9}))
    units = result_for(result, Audience(user_id=ME, suppress=False))["tables"]["by_unit"]
    assert [row["episodes"] for row in units["rows"]] == [SUPPRESSED, SUPPRESSED]
    assert units["total"]["episodes"] == 73  # less my rows: 23 episodes of three colleagues


def test_units_stay_whole_for_a_lead_and_where_a_clinician_has_enough_colleagues():
    result = clinicians_and_units((10, {ME: 24, BOB: 6}), (11, {ME: 76, CHEN: 14, DEV: 14}))

    lead = result_for(result, Audience(user_id=ME, suppress=False, team_unit_ids=frozenset({10, 11})))
    assert [row["episodes"] for row in lead["tables"]["by_unit"]["rows"]] == [30, 104]
    assert {row["clinician_id"] for row in lead["tables"]["by_clinician"]["rows"]} == {ME, BOB, CHEN, DEV}
    # Chen sees Ward 7 less her own: 90 episodes of two others (me and Dev). Elective she has no row in.
    chen = result_for(result, Audience(user_id=CHEN, suppress=False))
    assert [row["episodes"] for row in chen["tables"]["by_unit"]["rows"]] == [30, 104]
    assert not chen["tables"]["by_unit"].get("suppressed")


@pytest.mark.django_db
def test_alice_cannot_read_bobs_figures_off_her_specialtys_units(reports, org, alice, bob):
    # Trauma & Orthopaedics holds alice's and bob's episodes, Ward 7 alice's five: the specialty's row
    # less alice's would be bob's, and Ward 7 cannot cover it. Bob, their lead, sees all of it.
    for result in reports:
        assert "by_unit" not in result_for(result, audience_for(alice, org["ORTHO"].pk))["tables"]
        stored = {row["key"]: row["episodes"] for row in result["tables"]["by_unit"]["rows"]}
        units = result_for(result, audience_for(bob, org["ORTHO"].pk))["tables"]["by_unit"]
        assert {row["key"]: row["episodes"] for row in units["rows"]} == stored
