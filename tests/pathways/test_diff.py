"""What changed between two versions, in words a lead recognises."""

from decimal import Decimal

from pathways import services
from pathways.diff import version_diff


def test_it_lists_steps_added_removed_and_changed(tkr, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    ward = draft.stages.get(name="Ward and rehabilitation")
    services.step_remove(step=draft.steps.get(code="PHYSIO"), actor=bob)
    services.step_add(
        stage=ward, actor=bob, code="XRAY", name="Check X-ray", step_type="investigation", mandatory=False
    )
    surgery = draft.steps.get(code="SURGERY")
    services.step_update(step=surgery, actor=bob, window_min_minutes=0, window_max_minutes=2880)
    services.step_update(step=draft.steps.get(code="WARD-STAY"), actor=bob, expected_count=Decimal("2"))
    services.planned_resource_update(
        planned=surgery.planned_resources.get(resource=tkr["THEATRE-NURSE"]),
        quantity=Decimal("90"),
        headcount=3,
        actor=bob,
    )
    services.planned_resource_remove(planned=surgery.planned_resources.get(resource=tkr["CONSUMABLES"]), actor=bob)

    diff = version_diff(tkr["version"], draft)

    assert [s.code for s in diff.added] == ["XRAY"]
    assert [s.code for s in diff.removed] == ["PHYSIO"]
    changes = {c.code: c for c in diff.changed}
    assert set(changes) == {"SURGERY", "WARD-STAY"}
    window = [f for f in changes["SURGERY"].fields if f.label == "Window"][0]
    assert (window.before, window.after) == ("no timing rule", "0 min to 2 days after the episode start")
    assert changes["SURGERY"].timing_changed
    assert [(r.resource, r.before, r.after) for r in changes["SURGERY"].resources] == [
        ("CONSUMABLES", "1 item", ""),
        ("THEATRE-NURSE", "2 x 90 minutes", "3 x 90 minutes"),
    ]
    ward_change = changes["WARD-STAY"]
    assert [(f.label, f.before, f.after) for f in ward_change.fields] == [("Expected count", "3", "2")]
    assert not ward_change.timing_changed


def test_it_says_when_nothing_changed(tkr, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)

    assert version_diff(tkr["version"], draft).is_empty
