"""A 'must follow' order that goes round in a circle is refused when it is saved, not only at publish."""

import pytest
from django.core.exceptions import ValidationError

from pathways import services
from tests.conftest import login
from tests.pathways.builders import build_fracture

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def draft(org, bob):
    return build_fracture(org["ORTHO"], bob, publish=False)


def test_two_steps_that_must_follow_each_other_are_refused(draft, bob):
    # SURGERY must follow ASSESS already.
    assess = draft.steps.get(code="ASSESS")

    with pytest.raises(ValidationError) as err:
        services.step_update(step=assess, actor=bob, must_follow=[draft.steps.get(code="SURGERY")])

    assert err.value.message_dict["must_follow"] == [
        "That would make the 'must follow' order go round in a circle: ASSESS -> SURGERY -> ASSESS. "
        "Untick the step that has to come later."
    ]
    assert list(assess.must_follow.all()) == []


def test_a_longer_circle_is_named_in_the_form_and_the_input_kept(client, draft, bob):
    assess = draft.steps.get(code="ASSESS")
    login(client, bob)

    html = client.post(
        f"/pathways/steps/{assess.pk}/edit/",
        {
            "code": "ASSESS",
            "name": "Assessment by the orthogeriatrician",
            "stage": assess.stage_id,
            "step_type": "assessment",
            "mandatory": "on",
            "criticality": 4,
            "expected_count": "1",
            "window_min_minutes": 0,
            "window_max_minutes": 4320,
            "must_follow": [draft.steps.get(code="MOBILISE").pk],
        },
        **HX,
    ).content.decode()

    assert 'id="id_must_follow_error"' in html
    assert "go round in a circle: ASSESS -&gt; MOBILISE -&gt; SURGERY -&gt; ASSESS." in html
    assert 'value="Assessment by the orthogeriatrician"' in html
    assess.refresh_from_db()
    assert assess.name == "Orthogeriatric assessment"
    assert not assess.must_follow.exists()


def test_an_order_without_a_circle_is_saved(draft, bob):
    mobilise = draft.steps.get(code="MOBILISE")

    services.step_update(step=mobilise, actor=bob, must_follow=list(draft.steps.exclude(code="MOBILISE")))

    assert sorted(mobilise.must_follow.values_list("code", flat=True)) == ["ASSESS", "SURGERY"]
