"""A lead moves a step to another stage from its edit form, rather than deleting and recreating it."""

import pytest

from pathways.models import Step
from tests.conftest import login
from tests.pathways.builders import build_fracture

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def draft(org, bob):
    return build_fracture(org["ORTHO"], bob, publish=False)


def _edit(step, **overrides) -> dict:
    data = {
        "code": step.code,
        "name": step.name,
        "stage": step.stage_id,
        "step_type": step.step_type,
        "mandatory": "on",
        "criticality": step.criticality,
        "expected_count": "1",
        "anchor": step.anchor_id or "",
        "window_min_minutes": step.window_min_minutes,
        "window_max_minutes": step.window_max_minutes,
        "must_follow": list(step.must_follow.values_list("pk", flat=True)),
    }
    data.update(overrides)
    return data


def test_the_edit_form_offers_the_versions_stages_with_the_current_one_chosen(client, draft, bob, org):
    other = build_fracture(org["ORTHO"], bob, code="OTHER", publish=False)
    surgery = draft.steps.get(code="SURGERY")
    login(client, bob)

    html = client.get(f"/pathways/steps/{surgery.pk}/edit/").content.decode()

    assert '<select name="stage"' in html
    assert f'<option value="{surgery.stage_id}" selected>Theatre</option>' in html
    assert f'<option value="{draft.stages.get(name="Admission").pk}">Admission</option>' in html
    assert f'<option value="{other.stages.get(name="Admission").pk}">Admission</option>' not in html


def test_a_step_moves_to_the_end_of_another_stage_and_the_history_says_so(client, draft, bob):
    surgery = draft.steps.get(code="SURGERY")
    admission = draft.stages.get(name="Admission")
    login(client, bob)

    response = client.post(f"/pathways/steps/{surgery.pk}/edit/", _edit(surgery, stage=admission.pk), **HX)

    assert response["HX-Retarget"] == "#plan"
    assert list(admission.steps.order_by("order").values_list("code", flat=True)) == ["ASSESS", "SURGERY"]
    change = draft.changes.filter(action="step_update").latest("id")
    assert change.detail["changes"]["stage"] == ["Theatre", "Admission"]


def test_a_stage_of_another_version_is_not_a_choice(client, draft, bob, org):
    other = build_fracture(org["ORTHO"], bob, code="OTHER", publish=False)
    surgery = draft.steps.get(code="SURGERY")
    login(client, bob)

    html = client.post(
        f"/pathways/steps/{surgery.pk}/edit/", _edit(surgery, stage=other.stages.get(name="Admission").pk)
    ).content.decode()

    assert 'id="id_stage_error"' in html
    assert "Select a valid choice" in html
    assert Step.objects.get(pk=surgery.pk).stage.name == "Theatre"


def test_the_service_itself_keeps_a_step_within_its_version(draft, bob, org):
    """Not only the form: a caller of the service (the demo, the admin, a future API) is refused too."""
    from django.core.exceptions import ValidationError

    from pathways import services

    other = build_fracture(org["ORTHO"], bob, code="OTHER", publish=False)
    surgery = draft.steps.get(code="SURGERY")

    with pytest.raises(ValidationError) as refused:
        services.step_update(step=surgery, actor=bob, stage=other.stages.get(name="Admission"))

    assert refused.value.message_dict == {
        "stage": ["Choose a stage of this version: a step moves within its own version."]
    }
    assert Step.objects.get(pk=surgery.pk).stage.name == "Theatre"
