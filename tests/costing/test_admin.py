"""The admin writes rates and budgets through the finance services: audited with before and after,
one by one when several are deleted at once; derived rows cannot be added, edited or deleted there."""

from decimal import Decimal

import pytest

from accounts.models import AuditEvent
from costing.models import Budget, CostRate, EpisodeCost, EpisodeCostLine, ReportRun
from costing.standard import budget_set
from costing.summaries import episode_costs_refresh
from tests.conftest import login
from tests.costing.factories import knee_episode

pytestmark = pytest.mark.django_db


@pytest.fixture
def knee(org, alice):
    tkr, episode = knee_episode(org, alice)
    episode_costs_refresh()
    return tkr, episode


def test_a_rate_changed_in_the_admin_keeps_what_it_was_in_the_audit(client, knee, erin):
    tkr, _ = knee
    rate = CostRate.objects.get(resource=tkr["IMPLANT"], financial_year=2025)
    login(client, erin)

    response = client.post(
        f"/admin/costing/costrate/{rate.pk}/change/",
        {"rate": "2100", "currency": "GBP", "price_year": 2025, "source": "Corrected supplier price", "includes": ""},
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="cost_rate.update", object_id=str(rate.pk))
    # Was {"fields": ["rate", "source"]}: the rate it replaced was lost.
    assert (event.detail["before"]["rate"], event.detail["after"]["rate"]) == ("2000.000000", "2100.000000")
    assert event.detail["after"]["source"] == "Corrected supplier price"
    assert event.detail["reason"] == "Changed in the Django admin"
    assert event.actor == erin


def test_rates_deleted_together_in_the_admin_are_audited_one_by_one(client, knee, erin):
    tkr, _ = knee
    rates = list(CostRate.objects.filter(resource__in=[tkr["IMPLANT"], tkr["CONSUMABLES"]]).order_by("pk"))
    login(client, erin)

    response = client.post(
        "/admin/costing/costrate/",
        {"action": "delete_selected", "_selected_action": [r.pk for r in rates], "post": "yes"},
    )

    assert response.status_code == 302
    assert not CostRate.objects.filter(pk__in=[r.pk for r in rates]).exists()
    deleted = AuditEvent.objects.filter(action="cost_rate.delete").order_by("object_id")
    # Was no audit row at all: the bulk delete went past the audited delete_model.
    assert [(e.object_id, e.detail["before"]["resource"], e.detail["before"]["rate"]) for e in deleted] == [
        (str(rates[0].pk), rates[0].resource.code, f"{rates[0].rate:.6f}"),
        (str(rates[1].pk), rates[1].resource.code, f"{rates[1].rate:.6f}"),
    ]


def test_a_budget_changed_or_deleted_in_the_admin_is_audited_with_its_figures(client, knee, erin):
    tkr, _ = knee
    budget, _ = budget_set(pathway=tkr["pathway"], financial_year=2025, episodes=100, actor=None)
    login(client, erin)

    changed = client.post(f"/admin/costing/budget/{budget.pk}/change/", {"episodes": "120"})
    deleted = client.post(
        "/admin/costing/budget/", {"action": "delete_selected", "_selected_action": [budget.pk], "post": "yes"}
    )

    assert (changed.status_code, deleted.status_code) == (302, 302)
    update = AuditEvent.objects.get(action="budget.update")
    assert (update.detail["before"], update.detail["after"], update.actor) == (100, 120, erin)
    assert AuditEvent.objects.get(action="budget.delete").detail["episodes"] == 120
    assert not Budget.objects.exists()


@pytest.mark.parametrize(
    "model",
    ["costing/reportrun", "costing/episodecost", "costing/episodecostline"],
)
def test_derived_rows_cannot_be_added_changed_or_deleted_in_the_admin(client, knee, erin, model):
    _, episode = knee
    ReportRun.objects.create(kind="cost", parameters_key="k", status="succeeded")
    obj = {
        "costing/reportrun": ReportRun.objects.first(),
        "costing/episodecost": EpisodeCost.objects.get(episode=episode),
        "costing/episodecostline": EpisodeCostLine.objects.first(),
    }[model]
    counts = (ReportRun.objects.count(), EpisodeCost.objects.count(), EpisodeCostLine.objects.count())
    login(client, erin)

    listing = client.get(f"/admin/{model}/").content.decode()
    assert client.get(f"/admin/{model}/add/").status_code == 403
    assert client.post(f"/admin/{model}/{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(f"/admin/{model}/", {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
    page = client.get(f"/admin/{model}/{obj.pk}/change/").content.decode()

    assert 'value="delete_selected"' not in listing
    assert 'name="_save"' not in page
    assert (ReportRun.objects.count(), EpisodeCost.objects.count(), EpisodeCostLine.objects.count()) == counts
    assert EpisodeCost.objects.get(episode=episode).expected == Decimal("4167.125")


def test_a_rate_added_in_the_admin_is_created_by_the_service(client, knee, erin):
    tkr, _ = knee
    login(client, erin)

    response = client.post(
        "/admin/costing/costrate/add/",
        {
            "resource": tkr["IMPLANT"].pk,
            "financial_year": 2026,
            "rate": "2050",
            "currency": "GBP",
            "price_year": 2026,
            "source": "Supplier price list 2026",
            "includes": "",
        },
    )

    assert response.status_code == 302
    rate = CostRate.objects.get(resource=tkr["IMPLANT"], financial_year=2026)
    assert (rate.rate, rate.updated_by) == (Decimal("2050"), erin)
    event = AuditEvent.objects.filter(action="cost_rate.create").latest("id")
    assert (event.object_id, event.detail["before"], event.detail["after"]["rate"]) == (
        str(rate.pk),
        None,
        "2050.000000",
    )
