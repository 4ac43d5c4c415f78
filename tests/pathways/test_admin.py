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
