"""Finance maintains resources, rates and budgets in the browser; everyone else reads costs."""

from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from costing.models import Budget, CostRate
from pathways import services
from pathways.models import Resource
from tests.conftest import login
from tests.pathways.tkr import build_tkr

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def tkr(org, bob):
    return build_tkr(org["ORTHO"], user=bob)


@pytest.fixture(autouse=True)
def in_fy_2025():
    with time_machine.travel("2025-09-15 10:00:00+01:00", tick=False):
        yield


def test_the_cost_panel_shows_e_and_fills_each_step_cost(client, tkr, alice):
    login(client, alice)

    html = client.get(f"/costing/versions/{tkr['version'].pk}/cost/", **HX).content.decode()

    assert "£4,167.13" in html
    assert "FY 2025/26" in html
    for step, shown in [
        ("PREOP", "£49.13"),
        ("SURGERY", "£3,017.75"),
        ("WARD-STAY", "£1,044.00"),
        ("PHYSIO", "£56.25"),
    ]:
        assert f'id="step-cost-{tkr[step].pk}" hx-swap-oob="true" class="step-cost-value">{shown}' in html
    assert "(3 x £348.00)" in html


def test_the_cost_panel_uses_the_rates_in_force_on_the_chosen_date(client, tkr, alice, fred):
    from costing.rates import cost_rate_set

    cost_rate_set(
        resource=tkr["IMPLANT"], financial_year=2024, rate=Decimal("1900"), source="2024 contract", actor=fred
    )
    login(client, alice)

    html = client.get(f"/costing/versions/{tkr['version'].pk}/cost/?on=2025-02-01", **HX).content.decode()

    assert "FY 2024/25" in html
    assert "No rate is in force on that date for" in html  # only the implant has a 2024/25 rate
    assert "£1,900.00" in html


def test_provenance_explains_a_step_cost_line_by_line(client, tkr, alice):
    login(client, alice)

    html = client.get(f"/costing/steps/{tkr['SURGERY'].pk}/cost/", **HX).content.decode()

    assert "Cost of SURGERY: £3,017.75 per occurrence" in html
    assert "Theatre nurse" in html
    assert "£0.80 / minute" in html
    assert "£144.00" in html
    assert "DOMAIN.md worked example" in html
    assert "FY 2025/26" in html


def test_the_cost_delta_compares_two_versions_at_the_same_rates(client, tkr, bob, fred):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    services.step_update(step=draft.steps.get(code="WARD-STAY"), actor=bob, expected_count=Decimal("2"))
    login(client, fred)

    html = client.get(f"/costing/versions/{tkr['version'].pk}/{draft.pk}/cost-delta/").content.decode()

    assert "£4,167.13" in html and "£3,819.13" in html
    assert "-£348.00" in html


def test_a_draft_cost_is_hidden_from_a_clinician(client, tkr, bob, alice):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    login(client, alice)

    assert client.get(f"/costing/versions/{draft.pk}/cost/").status_code == 404
    assert client.get(f"/costing/steps/{draft.steps.first().pk}/cost/").status_code == 404


def test_finance_lists_resources_with_the_rate_in_force(client, tkr, fred, django_assert_max_num_queries):
    login(client, fred)
    client.get("/costing/resources/")

    with django_assert_max_num_queries(9):
        html = client.get("/costing/resources/").content.decode()

    assert "Consultant surgeon" in html
    assert "£1.875 / minute" in html
    assert "New resource" in html


def test_finance_changes_a_rate_with_a_reason(client, tkr, fred):
    login(client, fred)

    response = client.post(
        "/costing/resources/IMPLANT/rates/2025/",
        {"financial_year": 2025, "rate": "2200", "source": "Supplier contract 2025", "reason": "new supplier"},
    )

    assert response["Location"] == "/costing/resources/IMPLANT/"
    assert CostRate.objects.get(resource=tkr["IMPLANT"], financial_year=2025).rate == Decimal("2200")
    page = client.get("/costing/resources/IMPLANT/").content.decode()
    assert "Supplier contract 2025" in page
    assert "TKR v1" in page


def test_a_rate_form_keeps_input_and_shows_errors(client, tkr, fred):
    login(client, fred)

    html = client.post(
        "/costing/resources/IMPLANT/rates/new/", {"financial_year": 2025, "rate": "-1", "source": "typo"}
    ).content.decode()

    assert "Ensure this value is greater than or equal to 0." in html
    assert 'value="typo"' in html


def test_finance_adds_a_resource(client, db, fred):
    login(client, fred)

    response = client.post(
        "/costing/resources/new/",
        {"code": "hca", "name": "Healthcare assistant", "kind": "staff", "unit": "minute", "salaried": "on"},
    )

    assert response["Location"] == "/costing/resources/HCA/rates/new/"
    assert Resource.objects.get(code="HCA").salaried


def test_the_ccr_calculator_shows_its_working_and_saves_the_rate(client, tkr, fred):
    login(client, fred)
    data = {"capacity_cost": "1200000", "theoretical_minutes": "300000", "practical_factor": "0.85"}

    preview = client.post("/costing/rates/ccr/", data, **HX).content.decode()
    assert "300000 x 0.85 = <strong>255000" in preview
    assert "£4.705882 per minute" in preview

    response = client.post(
        "/costing/rates/ccr/",
        {
            **data,
            "resource": tkr["THEATRE"].pk,
            "financial_year": 2026,
            "source": "Theatres budget 2026/27",
            "action": "save",
        },
    )

    assert response["Location"] == "/costing/resources/THEATRE/"
    rate = CostRate.objects.get(resource=tkr["THEATRE"], financial_year=2026)
    assert (rate.rate, rate.practical_factor) == (Decimal("4.705882"), Decimal("0.850"))


def test_the_ccr_calculator_refuses_to_save_to_a_per_item_resource(client, tkr, fred):
    scanner = Resource.objects.create(code="SCANNER", name="Scanner", kind="equipment", unit="item")
    login(client, fred)

    html = client.post(
        "/costing/rates/ccr/",
        {
            "capacity_cost": "1000",
            "theoretical_minutes": "1000",
            "practical_factor": "0.8",
            "resource": scanner.pk,
            "financial_year": 2025,
            "source": "x",
            "action": "save",
        },
    ).content.decode()

    assert "A capacity cost rate is per minute" in html
    assert not CostRate.objects.filter(resource=scanner).exists()


def test_the_import_page_reports_accepted_rejected_and_updated_rows(client, tkr, fred):
    login(client, fred)
    csv = b"resource_code,financial_year,rate,source\nIMPLANT,2025,2100,Contract B\nGHOST,2025,1,x\nBED-DAY,2026,185,Ward budget 2026/27\n"

    html = client.post(
        "/costing/rates/import/", {"format": "csv", "file": SimpleUploadedFile("rates.csv", csv, "text/csv")}
    ).content.decode()

    assert "Import result: rates.csv" in html
    assert "no resource GHOST" in html
    assert '<td class="num">3</td>' in html  # line 3
    assert "£2,000.00" in html and "£2,100.00" in html  # updated: was, now, to the same places


def test_an_ncc_import_needs_its_financial_year(client, db, fred):
    login(client, fred)

    html = client.post(
        "/costing/rates/import/",
        {"format": "ncc", "file": SimpleUploadedFile("ncc.csv", b"Service Code\n", "text/csv")},
    ).content.decode()

    assert "Say which financial year the schedule is for" in html


def test_finance_maintains_budgets(client, tkr, fred, carol):
    login(client, fred)

    client.post("/costing/budgets/new/", {"pathway": tkr["pathway"].pk, "financial_year": 2025, "episodes": 100})
    client.post("/costing/budgets/new/", {"pathway": tkr["pathway"].pk, "financial_year": 2025, "episodes": 120})

    budget = Budget.objects.get()
    assert budget.episodes == 120
    client.post(
        f"/costing/budgets/{budget.pk}/", {"pathway": tkr["pathway"].pk, "financial_year": 2025, "episodes": 130}
    )
    assert Budget.objects.get().episodes == 130

    login(client, carol)
    html = client.get("/costing/budgets/").content.decode()
    assert "130" in html and "Add a budget" not in html
    assert client.post(f"/costing/budgets/{budget.pk}/remove/").status_code == 403

    login(client, fred)
    client.post(f"/costing/budgets/{budget.pk}/remove/")
    assert not Budget.objects.exists()


def test_managers_and_clinicians_read_rates_but_cannot_change_them(client, tkr, carol, alice):
    for user in (carol, alice):
        login(client, user)
        html = client.get("/costing/resources/IMPLANT/").content.decode()
        assert "2,000.00" in html
        assert "Set a rate" not in html and "/rates/2025/" not in html
        for url in [
            "/costing/resources/new/",
            "/costing/resources/IMPLANT/edit/",
            "/costing/resources/IMPLANT/rates/new/",
            "/costing/resources/IMPLANT/rates/2025/",
            "/costing/rates/ccr/",
            "/costing/rates/import/",
            "/costing/budgets/new/",
        ]:
            assert client.get(url).status_code == 403, url
    login(client, alice)
    assert client.get("/costing/budgets/").status_code == 403
