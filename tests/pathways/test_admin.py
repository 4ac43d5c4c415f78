"""The Django admin lists every pathway and costing model; frozen versions are read-only there."""

import pytest

from costing.models import CostRate
from pathways import services
from tests.conftest import login


@pytest.mark.parametrize(
    "model",
    [
        "pathways/pathway",
        "pathways/pathwayversion",
        "pathways/stage",
        "pathways/step",
        "pathways/plannedresource",
        "pathways/resource",
        "pathways/pathwaychange",
        "costing/costrate",
        "costing/budget",
        "costing/reportrun",
        "costing/episodecost",
        "costing/episodecostline",
    ],
)
def test_every_model_has_an_admin_list(client, tkr, erin, model):
    login(client, erin)

    assert client.get(f"/admin/{model}/").status_code == 200


def test_a_published_version_is_read_only_and_its_draft_is_editable(client, tkr, erin, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    login(client, erin)

    published = client.get(f"/admin/pathways/pathwayversion/{tkr['version'].pk}/change/").content.decode()
    editable = client.get(f"/admin/pathways/pathwayversion/{draft.pk}/change/").content.decode()

    assert 'name="_save"' not in published
    assert 'name="_save"' in editable
    assert client.post(f"/admin/pathways/pathwayversion/{tkr['version'].pk}/delete/").status_code == 403
    history = client.get(f"/admin/pathways/pathwaychange/{draft.changes.first().pk}/change/").content.decode()
    assert 'name="_save"' not in history


def test_a_rate_changed_in_the_admin_is_audited(client, tkr, erin):
    from accounts.models import AuditEvent

    rate = CostRate.objects.get(resource=tkr["IMPLANT"], financial_year=2025)
    login(client, erin)

    response = client.post(
        f"/admin/costing/costrate/{rate.pk}/change/",
        {
            "resource": tkr["IMPLANT"].pk,
            "financial_year": 2025,
            "rate": "2100",
            "currency": "GBP",
            "price_year": 2025,
            "source": "Corrected supplier price",
            "includes": "",
        },
    )

    assert response.status_code == 302
    rate.refresh_from_db()
    assert (rate.rate, rate.updated_by) == (2100, erin)
    assert AuditEvent.objects.filter(action="cost_rate.update", actor=erin, object_id=str(rate.pk)).exists()


def test_the_admin_keeps_a_planned_resources_unit_and_audits_a_change_with_before_and_after(client, tkr, erin):
    from accounts.models import AuditEvent

    nurse = tkr["WARD-NURSE"]
    login(client, erin)
    form = {"name": nurse.name, "kind": nurse.kind, "unit": "day", "salaried": "on", "description": ""}

    refused = client.post(f"/admin/pathways/resource/{nurse.pk}/change/", form)
    changed = client.post(f"/admin/pathways/resource/{nurse.pk}/change/", {**form, "unit": "minute", "salaried": ""})

    # Was saved: steps plan ward-nurse minutes, and a plan's 240 would have become 240 days.
    assert refused.status_code == 200
    assert "plan this resource in its current unit" in refused.context["adminform"].form.errors["unit"][0]
    assert changed.status_code == 302
    nurse.refresh_from_db()
    assert (nurse.unit, nurse.salaried) == ("minute", False)
    event = AuditEvent.objects.get(action="resource.update", object_id=str(nurse.pk))
    assert (event.detail["before"]["salaried"], event.detail["after"]["salaried"]) == (True, False)
