"""Dashboards, report pages, drill-down and exports, per persona."""

import csv
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from costing import tasks
from costing.models import ReportRun
from costing.reports import ReportParameters
from costing.services import report_run_request
from costing.suppression import audience_for, result_for
from tests.conftest import login
from tests.costing.factories import generate_dataset, two_pathways

pytestmark = pytest.mark.django_db


def computed(kind, unit, actor, **extra):
    params = ReportParameters.from_dict(
        {"org_unit": unit, "date_from": "2025-04-01", "date_to": "2026-03-31", "pathways": [], **extra}
    )
    run, _ = report_run_request(kind=kind, parameters=params, actor=actor)
    assert tasks.run_report(run.pk) == "succeeded"
    run.refresh_from_db()
    return run


@pytest.fixture
def data(org, alice, bob):
    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"]], clinicians=[alice, bob], n=120, seed=5)
    generate_dataset(pathways=[hip], units=[org["ORTHO-W7"]], clinicians=[alice], n=4, seed=6, active_share=0)
    return hip, gall


@pytest.fixture
def runs(data, carol, bob):
    return {
        ("SURG", "cost"): computed("cost", "SURG", carol),
        ("SURG", "variance"): computed("variance", "SURG", carol),
        ("ORTHO", "cost"): computed("cost", "ORTHO", bob),
        ("ORTHO", "variance"): computed("variance", "ORTHO", bob),
    }


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_the_manager_dashboard_leads_with_cost_and_hides_small_cells_and_names(client, runs, carol):
    login(client, carol)
    response = client.get(reverse("costing:dashboard"))

    page = text(response)
    assert response.status_code == 200
    assert 'Dashboard <span class="muted">Surgery</span>' in page
    assert page.index("Cost: expected against actual") < page.index("Departures from the pathways")
    assert "Cost of system-caused variance" in page
    assert "From expected to actual cost" in page and "<svg" in page  # the waterfall
    assert 'aria-current="page">Cost lens' in page
    assert "figures covering 1 to 7 episodes show as *" in page
    assert '<abbr title="Hidden to protect privacy">*</abbr>' in page  # Ward 7 holds 4 episodes
    assert "Adeyemi" not in page and "Okafor" not in page
    assert "Figures computed" in page
    assert "style=" not in page  # CSP: no inline styles, charts coloured by class


def test_a_report_computed_before_a_rate_changed_says_so_until_it_is_run_again(client, runs, carol, fred):
    from costing.models import CostRate
    from costing.rates import cost_rate_delete, cost_rate_set

    login(client, carol)
    run = runs[("SURG", "cost")]
    assert "after these figures were computed" not in text(client.get(reverse("costing:report_detail", args=[run.pk])))
    rate = CostRate.objects.select_related("resource").order_by("pk").first()
    cost_rate_set(
        resource=rate.resource,
        financial_year=rate.financial_year,
        rate=rate.rate * 2,
        source="Trust tariff 2025",
        actor=fred,
        reason="New supplier contract",
    )

    detail = text(client.get(reverse("costing:report_detail", args=[run.pk])))
    dashboard = text(client.get(reverse("costing:dashboard")))

    changed = (
        f"The {rate.resource.name} rate for FY {rate.financial_year}/{(rate.financial_year + 1) % 100:02d} changed"
    )
    for page in (detail, dashboard):
        assert changed in page and "(Fred Finance), after these figures were computed" in page
        assert "Run the report again for figures at today's rates." in page
    rerun = computed("cost", "SURG", carol)
    assert "after these figures were computed" not in text(
        client.get(reverse("costing:report_detail", args=[rerun.pk]))
    )

    # Removing a rate leaves no rate row to say so: the resource does, and its summaries go stale.
    cost_rate_delete(rate=CostRate.objects.get(pk=rate.pk), actor=fred, reason="Entered in error")
    after_delete = text(client.get(reverse("costing:report_detail", args=[rerun.pk])))
    assert (
        f"How {rate.resource.name} is costed (a rate removed, or its unit, kind or salaried flag) changed"
        in after_delete
    )


def test_the_clinical_lens_shows_the_same_runs_reasons_first(client, runs, carol):
    login(client, carol)
    cost_lens = text(client.get(reverse("costing:dashboard"), {"lens": "cost"}))
    clinical = text(client.get(reverse("costing:dashboard"), {"lens": "clinical"}))

    assert clinical.index("Departures from the pathways") < clinical.index("Cost: expected against actual")
    assert "Why departures happen (Pareto)" in clinical
    assert 'aria-current="page">Clinical lens' in clinical
    run_links = {f"/costing/reports/{runs[('SURG', kind)].pk}/" for kind in ("cost", "variance")}
    for page in (cost_lens, clinical):
        assert all(link in page for link in run_links)  # the same stored results under both lenses


def test_a_clinician_sees_their_own_figures_by_name_and_a_lead_their_team(client, runs, alice, bob):
    login(client, alice)
    page = text(client.get(reverse("costing:dashboard")))
    assert "Your figures" in page
    assert "Dr Alice Adeyemi" in page and "Mr Bob Okafor" not in page
    assert "Departures from the pathways" in page.split("Cost: expected against actual")[0]  # clinical lens first

    client.logout()
    login(client, bob)
    page = text(client.get(reverse("costing:dashboard")))
    assert "Your team" in page
    assert "Dr Alice Adeyemi" in page and "Mr Bob Okafor" in page
    assert "<abbr" not in page  # a clinical lead's own unit: nothing suppressed


def test_a_clinicians_own_figures_leave_system_caused_variance_out_and_say_so(client, runs, alice):
    login(client, alice)
    page = text(client.get(reverse("costing:report_detail", args=[runs[("ORTHO", "cost")].pk])))

    assert "Variance less system-caused" in page and "System-caused (the organisation" in page
    assert "leaves out system-caused variance" in page
    page = text(client.get(reverse("costing:report_detail", args=[runs[("ORTHO", "variance")].pk])))
    assert "Variances (not system-caused)" in page
    assert "leave out system-caused ones" in page


def test_a_clinician_sees_no_unit_figure_that_would_give_a_colleagues_away(client, runs, alice, bob):
    # Trauma & Orthopaedics is alice's and bob's: its row less alice's own would be bob's.
    for kind, title in (
        ("cost", "Expected and actual cost by organisational unit"),
        ("variance", "Organisational units"),
    ):
        login(client, alice)
        page = text(client.get(reverse("costing:report_detail", args=[runs[("ORTHO", kind)].pk])))
        # Besides hers, the specialty's episodes are all bob's: no figure of the team is shown to her.
        assert f"<h3>{title}" not in page
        assert (
            "Your team&#x27;s figures are not shown to you" in page
            or "Your team's figures are not shown to you" in page
        )
        assert "Dr Alice Adeyemi" in page  # her own figures
        client.logout()
        login(client, bob)  # their lead
        page = text(client.get(reverse("costing:report_detail", args=[runs[("ORTHO", kind)].pk])))
        assert "<abbr" not in page.split(f"<h3>{title}")[1].split("</table>")[0]
        client.logout()


def test_run_now_queues_a_run_and_returns_its_progress_bar(client, data, carol):
    login(client, carol)
    response = client.post(
        reverse("costing:report_request"),
        {"kind": "cost", "org_unit": "SURG", "section": "cost", "lens": "cost"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    run = ReportRun.objects.get()
    assert (run.kind, run.org_unit.code, run.requested_by) == ("cost", "SURG", carol)
    page = text(response)
    assert 'id="status-cost"' in page
    assert f'<progress id="progress-{run.pk}" class="progress" max="100" value="0">' in page
    assert f'hx-get="/costing/reports/{run.pk}/status/?section=cost&amp;lens=cost" hx-trigger="every 1s"' in page
    assert "Waiting for a worker" in page

    again = client.post(
        reverse("costing:report_request"),
        {"kind": "cost", "org_unit": "SURG", "section": "cost", "lens": "cost"},
        HTTP_HX_REQUEST="true",
    )
    assert "you joined it" in text(again)
    assert ReportRun.objects.count() == 1


def test_the_progress_bar_reloads_the_section_once_the_run_finished(client, data, carol):
    login(client, carol)
    run, _ = report_run_request(
        kind="cost", parameters=ReportParameters.default_for(carol.memberships.get().org_unit), actor=carol
    )
    url = reverse("costing:report_status", args=[run.pk]) + "?section=cost&lens=cost"
    ReportRun.objects.filter(pk=run.pk).update(status="running", progress=42)
    assert 'value="42"' in text(client.get(url, HTTP_HX_REQUEST="true"))

    ReportRun.objects.filter(pk=run.pk).update(status="queued")
    tasks.run_report(run.pk)
    page = text(client.get(url, HTTP_HX_REQUEST="true"))

    assert "Figures computed" in page
    assert 'hx-trigger="every 1s"' not in page  # polling stops
    assert 'hx-get="/costing/dashboard/?unit=SURG&amp;lens=cost&amp;section=cost" hx-trigger="load"' in page
    section = text(client.get("/costing/dashboard/?unit=SURG&lens=cost&section=cost", HTTP_HX_REQUEST="true"))
    assert section.startswith('<section id="section-cost"') and "Expected cost" in section


def test_a_bad_request_says_what_is_wrong_next_to_the_field(client, org, carol):
    login(client, carol)
    response = client.post(
        reverse("costing:report_request"), {"kind": "cost", "org_unit": "ED", "period": "custom", "date_from": ""}
    )
    page = text(response)
    assert response.status_code == 422
    assert "Select a valid choice. ED is not one of the available choices." in page  # not carol's unit
    assert "Give the first start date" in page or "Give the last start date" in page
    assert not ReportRun.objects.exists()


def test_reloading_the_form_with_errors_goes_back_to_the_reports_page(client, org, carol):
    login(client, carol)
    failed = client.post(reverse("costing:report_request"), {"kind": "cost", "period": "custom", "date_from": ""})
    assert failed.status_code == 422  # shown at /costing/reports/run/

    response = client.get(reverse("costing:report_request"))

    assert response.status_code == 302 and response["Location"] == reverse("costing:report_list")
    assert client.get(response["Location"]).status_code == 200
    assert client.put(reverse("costing:report_request")).status_code == 405


def test_opening_the_run_address_signed_out_asks_to_sign_in(client, org):
    response = client.get(reverse("costing:report_request"))

    assert response.status_code == 302 and "login" in response["Location"]


def test_reports_outside_ones_units_do_not_exist(client, runs, dora, alice):
    login(client, dora)  # Emergency Department: nothing to do with Surgery
    run = runs[("SURG", "cost")]
    for name, args in [
        ("report_detail", [run.pk]),
        ("report_status", [run.pk]),
        ("report_export_workbook", [run.pk]),
        ("report_export_table", [run.pk, "by_unit", "csv"]),
        ("drill_pathway", [run.pk, "HIP"]),
        ("drill_step", [run.pk, "HIP", "OP"]),
    ]:
        assert client.get(reverse(f"costing:{name}", args=args)).status_code == 404
    assert client.get(reverse("costing:dashboard"), {"unit": "SURG"}).status_code == 404
    client.logout()
    login(client, alice)
    assert client.get(reverse("costing:report_detail", args=[run.pk])).status_code == 404  # alice: ORTHO only


def test_the_report_page_offers_every_table_as_csv_and_xlsx(client, runs, erin):
    login(client, erin)
    run = runs[("SURG", "cost")]
    page = text(client.get(reverse("costing:report_detail", args=[run.pk])))
    for key in run.result["tables"]:
        assert f"/costing/reports/{run.pk}/tables/{key}.csv" in page
        assert f"/costing/reports/{run.pk}/tables/{key}.xlsx" in page
    assert f"/costing/reports/{run.pk}/export.xlsx" in page


def test_a_managers_exports_carry_the_same_stars_and_no_names(client, runs, carol):
    login(client, carol)
    run = runs[("SURG", "cost")]
    response = client.get(reverse("costing:report_export_table", args=[run.pk, "by_unit", "csv"]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["Unit", "Episodes", "Expected (£)"]  # money columns name their currency
    by_unit = {row[0]: row for row in rows[1:]}
    assert by_unit["Ward 7"][1:4] == ["*", "*", "*"]
    assert by_unit["Trauma & Orthopaedics"][1] == "*"  # or Ward 7 = total - T&O

    workbook = client.get(reverse("costing:report_export_workbook", args=[run.pk]))
    book = load_workbook(io.BytesIO(workbook.content))
    assert "Clinicians" not in book.sheetnames
    sheet = book["By unit"]
    values = {row[0].value: [c.value for c in row] for row in sheet.iter_rows(min_row=2)}
    assert values["Ward 7"][1] == "*"
    assert "Adeyemi" not in repr([c.value for s in book for row in s.iter_rows() for c in row])
    cover = book["Report"]
    assert cover["A1"].value == f"Cost report #{run.pk}"


def test_a_leads_workbook_holds_money_as_numbers(client, runs, bob):
    login(client, bob)
    run = runs[("ORTHO", "cost")]
    book = load_workbook(io.BytesIO(client.get(reverse("costing:report_export_workbook", args=[run.pk])).content))
    sheet = book["By pathway"]
    header = [c.value for c in sheet[1]]
    total = [c.value for c in sheet[sheet.max_row]]
    expected = total[header.index("Expected (£)")]
    assert isinstance(expected, float | int)
    assert round(expected, 2) == round(float(run.result["summary"]["expected"]), 2)
    assert sheet.cell(row=2, column=header.index("Expected (£)") + 1).number_format == "#,##0.00"
    assert "Clinicians" in book.sheetnames


def test_drill_down_goes_from_pathway_to_step_to_episodes_for_clinicians(client, runs, bob):
    login(client, bob)
    run = runs[("ORTHO", "variance")]
    report = text(client.get(reverse("costing:report_detail", args=[run.pk])))
    assert f'href="/costing/reports/{run.pk}/pathways/HIP/"' in report

    pathway = text(client.get(reverse("costing:drill_pathway", args=[run.pk, "HIP"])))
    step_link = f"/costing/reports/{run.pk}/pathways/HIP/steps/"
    assert step_link in pathway

    step = re.search(rf'href="{re.escape(step_link)}([A-Z-]+)/"', pathway).group(1)
    page = text(client.get(reverse("costing:drill_step", args=[run.pk, "HIP", step])))
    assert "Episodes" in page
    assert re.search(r'href="/variances/episodes/\d+/">PT-', page)


def test_managers_drill_down_to_units_not_episodes(client, runs, carol):
    login(client, carol)
    run = runs[("SURG", "cost")]
    step = next(r for r in run.result["tables"]["by_step"]["rows"] if r["key"].startswith("HIP/"))["key"].split("/")[1]
    page = text(client.get(reverse("costing:drill_step", args=[run.pk, "HIP", step])))
    assert "By organisational unit" in page
    assert "/variances/episodes/" not in page
    assert "PT-" not in page


@pytest.mark.parametrize("kind", ["cost", "variance"])
def test_a_steps_units_come_from_the_same_run_and_add_up_to_its_row(client, runs, carol, alice, data, kind, org):
    login(client, carol)
    run = runs[("SURG", kind)]
    row = next(r for r in run.result["tables"]["by_step"]["rows"] if r["key"].startswith("HIP/"))
    step = row["key"].split("/")[1]
    units = run.result["step_units"][row["key"]]
    assert sum(u["episodes"] for u in units) == row["episodes"]  # an episode is in one unit
    if kind == "cost":
        assert sum(Decimal(u["variance"]) for u in units) == Decimal(row["variance"])
    else:
        assert sum(u["variances"] for u in units) == row["variances"]
    # What happens after the run does not move its figures: more episodes on the step's pathway.
    generate_dataset(pathways=[data[0]], units=[org["ORTHO"]], clinicians=[alice], n=30, seed=9)

    page = client.get(reverse("costing:drill_step", args=[run.pk, "HIP", step]))

    rows = page.context["units"].rows
    shown = [[cell["text"] for cell in r["cells"]] for r in rows if not r["suppressed"]]
    stored = {u["org_unit_id"]: u for u in units}
    names = {org[c].pk: org[c].name for c in ("ORTHO", "ORTHO-W7")}
    for cells in shown:
        unit = next(pk for pk, name in names.items() if name == cells[0])
        assert cells[1 if kind == "cost" else 2] == f"{stored[unit]['episodes']:,}"
    assert "counted now" not in text(page)
    small = [u for u in units if 0 < u["episodes"] <= 7]
    if small:
        # The step's row above is the units' total: with one other unit to hide a small one
        # among, that one goes too, or the row less the other would give the small one back.
        assert len(units) == 2 and not shown and len(rows) == 2
    # What a reader is given of a run (pages, API, exports) never carries them whole: the
    # drill-down suppresses them itself.
    assert "step_units" not in result_for(run.result, audience_for(carol, run.org_unit_id))


def test_the_dashboard_runs_a_bounded_number_of_queries(client, runs, carol, django_assert_max_num_queries):
    login(client, carol)
    client.get(reverse("costing:dashboard"))
    with django_assert_max_num_queries(16):
        client.get(reverse("costing:dashboard"))


def test_the_report_list_shows_runs_in_scope_with_a_bounded_number_of_queries(
    client, runs, carol, dora, django_assert_max_num_queries
):
    login(client, carol)
    with django_assert_max_num_queries(12):
        page = text(client.get(reverse("costing:report_list")))
    assert page.count("Succeeded") == 4
    client.logout()
    login(client, dora)
    assert "Succeeded" not in text(client.get(reverse("costing:report_list")))


def test_every_role_finds_the_dashboard_in_the_navigation(client, runs, alice, bob, carol, fred, erin):
    for person in (alice, bob, carol, fred, erin):
        client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
        assert 'href="/costing/dashboard/"' in text(client.get("/"))
        assert client.get(reverse("costing:dashboard")).status_code == 200


def test_the_report_page_polls_a_live_run_and_reloads_when_it_is_done(client, data, carol):
    login(client, carol)
    run, _ = report_run_request(
        kind="variance", parameters=ReportParameters.default_for(carol.memberships.get().org_unit), actor=carol
    )
    page = text(client.get(reverse("costing:report_detail", args=[run.pk])))
    assert f'hx-get="/costing/reports/{run.pk}/status/" hx-trigger="every 1s"' in page
    assert "Waiting for a worker to compute the variance report: 0%" in page

    tasks.run_report(run.pk)
    response = client.get(reverse("costing:report_status", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert response["HX-Refresh"] == "true"
    page = text(client.get(reverse("costing:report_detail", args=[run.pk])))
    assert "Figures computed" in page and "every 1s" not in page


def test_run_now_with_a_unit_out_of_scope_answers_in_place(client, org, carol):
    login(client, carol)
    response = client.post(
        reverse("costing:report_request"),
        {"kind": "cost", "org_unit": "ED", "section": "cost", "lens": "cost"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    page = text(response)
    assert page.startswith('<div id="status-cost"')
    assert "Organisational unit: Select a valid choice." in page


def test_exports_say_which_sign_is_adverse_and_give_every_column_its_own_name(client, runs, bob):
    login(client, bob)
    run = runs[("ORTHO", "cost")]
    by_pathway = run.result["tables"]["by_pathway"]
    response = client.get(reverse("costing:report_export_table", args=[run.pk, "by_pathway", "csv"]))
    rows = list(csv.reader(io.StringIO(response.content.decode())))

    header = rows[0]
    variance = header.index("Variance (£, positive = adverse U, negative = favourable F)")
    assert "Expected (£)" in header  # plain money columns have no sign to explain
    for row, shown in zip(rows[1:], by_pathway["rows"], strict=False):
        # The number stays machine-readable; its sign is the page's U (positive) or F (negative).
        assert Decimal(row[variance]) == Decimal(shown["variance"]).quantize(Decimal("0.01"))
    assert any(Decimal(row[variance]) > 0 for row in rows[1:])

    outcomes = client.get(reverse("costing:report_export_table", args=[run.pk, "outcomes", "csv"]))
    outcome_header = next(csv.reader(io.StringIO(outcomes.content.decode())))
    assert outcome_header[:2] == ["Episode group", "Episodes"]
    for table in run.result["tables"].values():
        labels = [c["label"] for c in table["columns"]]
        assert len(labels) == len(set(labels)), table["title"]

    book = load_workbook(io.BytesIO(client.get(reverse("costing:report_export_workbook", args=[run.pk])).content))
    sheet = book["By pathway"]
    cell = sheet.cell(row=2, column=variance + 1)
    assert isinstance(cell.value, float | int)
    assert cell.number_format == '#,##0.00" U";#,##0.00" F";0.00'  # 919.13 F on screen, -919.13 in the cell
