"""Slips of the keyboard are refused by the field that holds them: absurd windows, counts and quantities,
a window before the episode starts, a mandatory step expected zero times."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from pathways import services
from pathways.models import PlannedResource, Resource, Step
from tests.conftest import login
from tests.pathways.builders import build_fracture

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def draft(org, bob):
    return build_fracture(org["ORTHO"], bob, publish=False)


def _step_post(**overrides) -> dict:
    data = {
        "code": "REVIEW",
        "name": "Consultant review",
        "step_type": "assessment",
        "mandatory": "on",
        "criticality": 2,
        "expected_count": "1",
        "window_min_minutes": 0,
        "window_max_minutes": 1440,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _add_step(client, draft, **overrides):
    stage = draft.stages.get(name="Theatre")
    return client.post(f"/pathways/stages/{stage.pk}/steps/new/", _step_post(**overrides), **HX).content.decode()


def test_a_window_of_99_999_999_999_minutes_is_refused_by_its_field(client, draft, bob):
    login(client, bob)

    html = _add_step(client, draft, window_max_minutes="99999999999")

    assert 'id="id_window_max_minutes_error"' in html
    assert "Keep within 365 days (525,600 minutes) of the anchor." in html
    assert 'value="99999999999"' in html
    assert 'value="Consultant review"' in html
    assert not Step.objects.filter(code="REVIEW").exists()


def test_a_window_of_a_year_is_accepted(draft, bob):
    step = services.step_add(
        stage=draft.stages.get(name="Theatre"), actor=bob, code="FOLLOW-UP", name="One-year review",
        window_min_minutes=0, window_max_minutes=525_600,
    )  # fmt: skip

    assert step.window_max_minutes == 525_600


@pytest.mark.parametrize(
    ("low", "high", "field"),
    [(-500, -60, "window_min_minutes"), (-500, -60, "window_max_minutes"), (None, -30, "window_max_minutes")],
)
def test_a_window_before_the_episode_start_is_refused(client, draft, bob, low, high, field):
    login(client, bob)

    html = _add_step(client, draft, window_min_minutes=low, window_max_minutes=high)

    assert f'id="id_{field}_error"' in html
    assert "A step timed from the episode start cannot be due before the episode starts" in html
    assert not Step.objects.filter(code="REVIEW").exists()


def test_a_window_before_another_step_is_still_allowed(draft, bob):
    step = services.step_add(
        stage=draft.stages.get(name="Theatre"), actor=bob, code="CONSENT", name="Consent",
        anchor=draft.steps.get(code="SURGERY"), window_min_minutes=-500, window_max_minutes=-60,
    )  # fmt: skip

    assert (step.window_min_minutes, step.window_max_minutes) == (-500, -60)


def test_an_expected_count_of_99_999_needs_per_day(client, draft, bob):
    login(client, bob)

    html = _add_step(client, draft, expected_count="99999")

    assert 'id="id_expected_count_error"' in html
    assert "At most 100 times in one episode; for a step repeated each day, tick Per day." in html
    assert 'value="99999"' in html
    assert not Step.objects.filter(code="REVIEW").exists()


def test_a_per_day_step_is_expected_for_at_most_a_year(draft, bob):
    stage = draft.stages.get(name="Theatre")

    with pytest.raises(ValidationError) as err:
        services.step_add(stage=stage, actor=bob, code="STAY", name="Stay", per_day=True, expected_count=Decimal(400))

    assert err.value.message_dict["expected_count"] == ["A per-day step is expected for at most 365 days."]
    stay = services.step_add(stage=stage, actor=bob, code="STAY", name="Stay", per_day=True, expected_count=Decimal(30))
    assert stay.expected_count == 30


def test_a_mandatory_step_is_expected_at_least_once(client, draft, bob):
    login(client, bob)

    html = _add_step(client, draft, expected_count="0")

    assert 'id="id_expected_count_error"' in html
    assert "A mandatory step is expected at least once: set 1 or more, or untick Mandatory" in html
    assert not Step.objects.filter(code="REVIEW").exists()
    # A conditional step is not mandatory and may be expected in a fraction of episodes.
    _add_step(client, draft, mandatory=None, expected_count="0.3")
    assert Step.objects.get(code="REVIEW").expected_count == Decimal("0.3")


def test_a_planned_quantity_of_999_999_999_bed_days_is_refused(client, draft, bob):
    beds = Resource.objects.create(code="CC-BED", name="Critical-care bed-day", kind="bed_day", unit="day")
    surgery = draft.steps.get(code="SURGERY")
    login(client, bob)

    html = client.post(
        f"/pathways/steps/{surgery.pk}/resources/new/", {"resource": beds.pk, "quantity": "999999999", "headcount": 1}
    ).content.decode()

    assert 'id="id_quantity_error"' in html
    assert "At most 365 days for one occurrence of the step." in html
    assert 'value="999999999"' in html
    assert not PlannedResource.objects.filter(step=surgery).exists()


def test_minutes_are_bounded_to_a_day_per_person_on_edit_too(client, draft, bob):
    nurse = Resource.objects.create(code="NURSE", name="Ward nurse", kind="staff", unit="minute")
    surgery = draft.steps.get(code="SURGERY")
    planned = services.planned_resource_add(step=surgery, resource=nurse, quantity=Decimal(90), actor=bob)
    login(client, bob)

    html = client.post(
        f"/pathways/planned/{planned.pk}/edit/", {"resource": nurse.pk, "quantity": "5000", "headcount": 2}
    ).content.decode()

    assert "At most 1,440 minutes (a day) per person for one occurrence" in html
    assert 'value="5000"' in html
    planned.refresh_from_db()
    assert (planned.quantity, planned.headcount) == (90, 1)


def test_publish_catches_absurd_values_written_around_the_forms(draft, bob):
    # The admin and an import write rows without the authoring forms.
    Step.objects.filter(version=draft, code="ASSESS").update(window_min_minutes=-500, window_max_minutes=-60)
    Step.objects.filter(version=draft, code="SURGERY").update(expected_count=0)

    problems = [p.message for p in services.version_problems(draft)]

    assert any(m.startswith("ASSESS: A step timed from the episode start cannot be due before") for m in problems)
    assert any(m.startswith("SURGERY: A mandatory step is expected at least once") for m in problems)
    with pytest.raises(ValidationError):
        services.pathway_version_publish(version=draft, actor=bob, note="go")
