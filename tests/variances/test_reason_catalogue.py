"""The reason catalogue: seeded from HL7 CDS Hooks, local codes per pathway, retired never deleted."""

from tests.conftest import login
from variances.models import ReasonCode
from variances.reasons import SYSTEM, seed_base_reasons
from variances.selectors import ranked_reasons


def test_the_base_catalogue_holds_the_cds_hooks_categories_and_codes(seeded_reasons):
    codes = dict(ReasonCode.objects.filter(pathway__isnull=True).values_list("code", "category"))
    assert codes["patient-contraindication"] == "recipient-concerns-outcomes"
    assert codes["service-not-available"] == "not-convenient-feasible"
    assert codes["prefers-alternative"] == "does-not-align-preferences"
    assert {c for c, cat in codes.items() if c == cat} == {
        "cds-not-applicable",
        "cds-suboptimal-context",
        "recipient-disagrees-evidence",
        "recipient-concerns-outcomes",
        "does-not-align-preferences",
        "not-convenient-feasible",
    }
    refused = ReasonCode.objects.get(code="patient-refuses")
    assert refused.discouraged and refused.system == SYSTEM
    assert ReasonCode.objects.get(code="service-not-available").default_cause == "system"


def test_seeding_again_creates_nothing_and_keeps_an_administrators_changes(seeded_reasons):
    ReasonCode.objects.filter(code="limited-time").update(retired=True)
    assert seed_base_reasons(ReasonCode) == 0
    assert ReasonCode.objects.get(code="limited-time").retired


def test_retired_codes_and_other_pathways_local_codes_are_not_offered(knee, org, seeded_reasons):
    from tests.variances.factories import build_pathway

    other = build_pathway(org["ORTHO"], code="OTHER")
    ReasonCode.objects.create(code="no-bed-w7", display="No bed on Ward 7", pathway=knee.pathway)
    ReasonCode.objects.create(code="no-bed-w9", display="No bed on Ward 9", pathway=other.pathway)
    ReasonCode.objects.filter(code="limited-time").update(retired=True)

    offered = {r.code for r in ranked_reasons(pathway_id=knee.pathway_id, step_code="SURGERY")}

    assert "no-bed-w7" in offered
    assert "no-bed-w9" not in offered
    assert "limited-time" not in offered


def test_administrators_retire_codes_but_cannot_delete_them(client, erin, seeded_reasons):
    login(client, erin)
    code = ReasonCode.objects.get(code="prefers-alternative")

    changelist = client.get("/admin/variances/reasoncode/").content.decode()
    assert "delete_selected" not in changelist
    assert client.get(f"/admin/variances/reasoncode/{code.pk}/delete/").status_code in (302, 403)

    client.post("/admin/variances/reasoncode/", {"action": "retire", "_selected_action": [code.pk]})
    code.refresh_from_db()
    assert code.retired
