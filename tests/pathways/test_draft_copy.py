"""A new version is drafted by copying the current one, completely, and edited without touching it."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from pathways import services
from pathways.exchange import version_export
from tests.pathways.builders import build_fracture


def test_it_copies_stages_steps_anchors_must_follow_and_planned_resources(tkr, bob, org):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob, note="Enhanced recovery")

    assert (draft.number, draft.status) == (2, "draft")
    original, copy = version_export(tkr["version"]), version_export(draft)
    assert copy["stages"] == original["stages"]
    assert copy["resources"] == original["resources"]
    assert not set(draft.steps.values_list("pk", flat=True)) & set(tkr["version"].steps.values_list("pk", flat=True))

    fracture = build_fracture(org["ORTHO"], bob)
    fracture_draft = services.pathway_version_draft(pathway=fracture.pathway, actor=bob)
    mobilise = fracture_draft.steps.get(code="MOBILISE")
    assert mobilise.anchor.version_id == fracture_draft.pk
    assert mobilise.anchor.code == "SURGERY"
    assert [s.version_id for s in mobilise.must_follow.all()] == [fracture_draft.pk]
    assert version_export(fracture_draft)["stages"] == version_export(fracture)["stages"]


def test_editing_the_draft_leaves_the_published_version_alone(tkr, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    ward = draft.steps.get(code="WARD-STAY")

    services.step_update(step=ward, actor=bob, expected_count=Decimal("2"))
    services.planned_resource_update(
        planned=draft.steps.get(code="SURGERY").planned_resources.get(resource=tkr["IMPLANT"]),
        quantity=Decimal("1"),
        headcount=1,
        actor=bob,
    )

    assert tkr["version"].steps.get(code="WARD-STAY").expected_count == Decimal("3")
    assert draft.steps.get(code="WARD-STAY").expected_count == Decimal("2")
    assert draft.changes.filter(action="step_update", actor=bob).get().detail["changes"] == {
        "expected_count": ["3.000", "2"]
    }


def test_there_is_one_draft_at_a_time(tkr, bob):
    services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)

    with pytest.raises(ValidationError, match="already has a draft \\(version 2\\)"):
        services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)


def test_it_reorders_steps_and_refuses_to_remove_an_anchor(org, bob):
    draft = build_fracture(org["ORTHO"], bob, publish=False)
    theatre = draft.stages.get(name="Theatre")

    services.step_move(step=draft.steps.get(code="MOBILISE"), offset=-1, actor=bob)

    assert list(theatre.steps.order_by("order").values_list("code", flat=True)) == ["MOBILISE", "SURGERY"]
    with pytest.raises(ValidationError, match="SURGERY is the timing anchor of MOBILISE"):
        services.step_remove(step=draft.steps.get(code="SURGERY"), actor=bob)
    with pytest.raises(ValidationError, match="still has steps"):
        services.stage_remove(stage=theatre, actor=bob)


def test_it_explains_bad_step_input_by_field(org, bob):
    draft = build_fracture(org["ORTHO"], bob, publish=False)
    stage = draft.stages.get(name="Admission")

    with pytest.raises(ValidationError) as err:
        services.step_add(
            stage=stage, actor=bob, code="ASSESS", name="Again", window_min_minutes=60, window_max_minutes=30
        )

    errors = err.value.message_dict
    assert errors["window_max_minutes"] == ["The latest time must not be before the earliest time."]
    assert "Another step of this version already has this code." in " ".join(
        errors.get("__all__", []) + errors.get("code", [])
    )
