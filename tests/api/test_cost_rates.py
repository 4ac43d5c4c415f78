"""/api/v1/cost-rates/: finance reads and changes standard rates; every change is an audited rate change."""

from decimal import Decimal

from django.utils import timezone

from accounts.models import AuditEvent
from costing.models import CostRate, financial_year_of
from tests.api.conftest import error_fields, problem
from tests.api.factories import resources

FY = financial_year_of(timezone.localdate())


def test_it_lists_rates_with_filters_and_count(api, fred, org):
    resources()
    client = api(fred)

    body = client.get("/api/v1/cost-rates/").json()
    assert body["count"] == 8
    consultant = client.get("/api/v1/cost-rates/?resource=CONSULTANT").json()["results"]
    assert len(consultant) == 1
    assert consultant[0]["rate"] == "1.875"
    assert consultant[0]["unit"] == "minute"
    assert consultant[0]["financial_year"] == FY
    assert client.get(f"/api/v1/cost-rates/?financial_year={FY - 1}").json()["count"] == 0


def test_it_lists_only_the_rates_in_force_on_a_date(api, fred, org):
    res = resources()
    CostRate.objects.create(
        resource=res["CONSULTANT"], financial_year=FY - 1, rate=Decimal("1.7"), price_year=FY - 1, source="old"
    )
    client = api(fred)

    assert client.get("/api/v1/cost-rates/?resource=CONSULTANT").json()["count"] == 2
    in_force = client.get(f"/api/v1/cost-rates/?resource=CONSULTANT&in_force_on={FY}-06-01").json()["results"]
    assert [r["rate"] for r in in_force] == ["1.875"]
    last_year = client.get(f"/api/v1/cost-rates/?resource=CONSULTANT&in_force_on={FY}-01-15").json()["results"]
    assert [r["rate"] for r in last_year] == ["1.7"]


def test_it_creates_a_rate_with_location_etag_and_an_audited_rate_change(api, fred, org):
    res = resources()
    CostRate.objects.filter(resource=res["PHYSIO"]).delete()

    response = api(fred).post(
        "/api/v1/cost-rates/",
        {"resource": "PHYSIO", "financial_year": FY, "rate": "0.65", "source": "Band 6 2025 pay award"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rate"] == "0.65"
    assert body["updated_by"] == "fred"
    assert response["Location"] == f"/api/v1/cost-rates/{body['id']}/"
    assert response["ETag"].startswith('"rate-')
    event = AuditEvent.objects.get(action="cost_rate.create")
    assert event.actor_name == "fred"
    assert event.detail["after"]["rate"] == "0.650000"


def test_it_calculates_a_capacity_cost_rate_from_its_working(api, fred, org):
    resources()
    CostRate.objects.filter(resource__code="THEATRE").delete()

    response = api(fred).post(
        "/api/v1/cost-rates/",
        {
            "resource": "THEATRE",
            "financial_year": FY,
            "capacity_cost": "459000",
            "theoretical_capacity_minutes": "120000",
            "practical_factor": "0.85",
            "source": "Theatre budget / practical capacity",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["rate"] == "4.5"
    assert response.json()["practical_factor"] == "0.850"


def test_it_refuses_a_second_rate_for_the_same_resource_and_year(api, fred, org):
    resources()

    response = api(fred).post(
        "/api/v1/cost-rates/",
        {"resource": "CONSULTANT", "financial_year": FY, "rate": "2", "source": "x"},
        format="json",
    )

    assert response.status_code == 409
    assert "already has a rate" in problem(response)["detail"]
    assert CostRate.objects.get(resource__code="CONSULTANT").rate == Decimal("1.875")


def test_it_names_unknown_and_server_set_fields(api, fred, org):
    resources()

    response = api(fred).post(
        "/api/v1/cost-rates/",
        {"resource": "NOPE", "financial_year": FY, "rate": "-1", "source": "x", "updated_by": 1, "colour": "red"},
        format="json",
    )

    assert response.status_code == 400
    fields = error_fields(response)
    assert set(fields) == {"resource", "rate", "updated_by", "colour"}
    assert "set by the server" in fields["updated_by"]
    assert fields["colour"].startswith("Unknown field.")


def test_it_changes_a_rate_only_with_the_current_etag(api, fred, org):
    resources()
    rate = CostRate.objects.get(resource__code="CONSULTANT")
    client = api(fred)
    url = f"/api/v1/cost-rates/{rate.pk}/"
    current = client.get(url)["ETag"]

    missing = client.patch(url, {"rate": "1.9"}, format="json")
    assert missing.status_code == 428
    assert problem(missing)["type"] == "urn:commonpath:problem:precondition-required"

    changed = client.patch(url, {"rate": "1.9", "reason": "2025 pay award"}, format="json", HTTP_IF_MATCH=current)
    assert changed.status_code == 200, changed.content
    assert changed.json()["rate"] == "1.9"
    assert changed["ETag"] != current

    stale = client.patch(url, {"rate": "2.0"}, format="json", HTTP_IF_MATCH=current)
    assert stale.status_code == 412
    assert "changed since you read it" in problem(stale)["detail"]
    assert CostRate.objects.get(pk=rate.pk).rate == Decimal("1.9")
    change = AuditEvent.objects.get(action="cost_rate.update")
    assert change.detail["before"]["rate"] == "1.875000"
    assert change.detail["after"]["rate"] == "1.900000"
    assert change.detail["reason"] == "2025 pay award"


def test_it_keeps_rates_from_clinicians_and_managers(api, alice, carol, org):
    resources()

    for user in (alice, carol):
        response = api(user).get("/api/v1/cost-rates/")
        assert response.status_code == 403
        assert "results" not in response.json()


def test_it_lists_rates_in_a_fixed_number_of_queries(api, fred, org, django_assert_max_num_queries):
    resources()
    client = api(fred)

    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/cost-rates/").json()["count"] == 8


def test_it_refuses_a_rate_in_another_currency_naming_the_field(api, fred, org):
    resources()
    rate = CostRate.objects.get(resource__code="IMPLANT-KNEE")
    client = api(fred)
    url = f"/api/v1/cost-rates/{rate.pk}/"

    changed = client.patch(url, {"currency": "USD"}, format="json", HTTP_IF_MATCH=client.get(url)["ETag"])
    CostRate.objects.filter(resource__code="PHYSIO").delete()
    created = client.post(
        "/api/v1/cost-rates/",
        {"resource": "PHYSIO", "financial_year": FY, "rate": "0.65", "currency": "EUR", "source": "x"},
        format="json",
    )

    assert changed.status_code == 400  # was 200, and the implant was then added to pounds as dollars
    assert "Rates are in GBP" in error_fields(changed)["currency"]
    assert CostRate.objects.get(pk=rate.pk).currency == "GBP"
    assert created.status_code == 400
    assert "Convert the figure to GBP" in error_fields(created)["currency"]
    assert not CostRate.objects.filter(resource__code="PHYSIO").exists()


def test_an_empty_change_is_refused_as_nothing_to_change(api, fred, org):
    resources()
    rate = CostRate.objects.get(resource__code="CONSULTANT")
    client = api(fred)
    url = f"/api/v1/cost-rates/{rate.pk}/"
    etag = client.get(url)["ETag"]

    for body in ({}, {"reason": "just checking"}):
        response = client.patch(url, body, format="json", HTTP_IF_MATCH=etag)
        assert response.status_code == 400  # was 200, as if something had changed
        assert "Nothing to change" in problem(response)["errors"][0]["detail"]
    assert not AuditEvent.objects.filter(action="cost_rate.update").exists()


def test_a_calculator_error_names_the_field_the_api_has(api, fred, org):
    resources()
    CostRate.objects.filter(resource__code="THEATRE").delete()

    response = api(fred).post(
        "/api/v1/cost-rates/",
        {
            "resource": "THEATRE",
            "financial_year": FY,
            "capacity_cost": "1000",
            "theoretical_capacity_minutes": "0",
            "source": "x",
        },
        format="json",
    )

    assert response.status_code == 400
    # Was "theoretical_minutes", a field the API does not have.
    assert set(error_fields(response)) == {"theoretical_capacity_minutes"}


def test_the_same_rate_again_keeps_the_calculators_working_a_new_one_clears_it(api, fred, org):
    resources()
    CostRate.objects.filter(resource__code="THEATRE").delete()
    client = api(fred)
    created = client.post(
        "/api/v1/cost-rates/",
        {
            "resource": "THEATRE",
            "financial_year": FY,
            "capacity_cost": "459000",
            "theoretical_capacity_minutes": "120000",
            "source": "Theatre budget / practical capacity",
        },
        format="json",
    )
    url = created["Location"]

    same = client.patch(
        url, {"rate": "4.5", "source": "Theatre budget 2025/26"}, format="json", HTTP_IF_MATCH=created["ETag"]
    )
    assert same.status_code == 200, same.content
    # Was cleared: the same figure is still the calculator's, and its working still explains it.
    assert (same.json()["source"], same.json()["capacity_cost"]) == ("Theatre budget 2025/26", "459000")
    assert same.json()["theoretical_capacity_minutes"] == "120000.00"

    new = client.patch(url, {"rate": "4.6"}, format="json", HTTP_IF_MATCH=same["ETag"])
    assert new.status_code == 200, new.content
    assert (new.json()["rate"], new.json()["capacity_cost"], new.json()["practical_factor"]) == ("4.6", None, None)
