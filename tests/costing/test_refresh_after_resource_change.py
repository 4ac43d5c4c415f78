"""A resource that changes what it is (salaried, unit, kind) makes the stored summaries that used it stale."""

from decimal import Decimal

import pytest
import time_machine

from costing.engine import cost_episode
from costing.models import EpisodeCost
from costing.summaries import closed_episodes, episode_costs_refresh, stale
from pathways.models import Resource
from pathways.services import resource_update
from tests.costing.factories import at, knee_episode, simple_pathway
from variances import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def episodes(org, alice):
    """The knee example, and an episode on a pathway that uses none of the knee's resources."""
    _tkr, knee = knee_episode(org, alice)
    clinic = simple_pathway(
        "CLINIC",
        org["ORTHO"],
        resources={"NURSE-CLINIC": ("staff", "minute", True, "0.5")},
        steps=[("SEE", False, 1, [("NURSE-CLINIC", 20, 1)])],
    )
    with time_machine.travel(at(2025, 7, 1), tick=False):
        other = services.episode_start(
            pathway_version=clinic["version"],
            patient_ref="PT-CLINIC",
            org_unit=org["ORTHO-W7"],
            responsible_clinician=alice,
            started_at=at(2025, 6, 2, 8),
            actor=alice,
        )
        other = services.episode_close(episode=other, ended_at=at(2025, 6, 2, 10), actor=alice)
    assert episode_costs_refresh() == 2
    return knee, other


def change(code, erin, **what):
    resource = Resource.objects.get(code=code)
    fields = {name: getattr(resource, name) for name in ("name", "kind", "unit", "salaried", "description")}
    return resource_update(resource=resource, actor=erin, **{**fields, **what})


def test_a_salaried_flag_changed_recomputes_the_summaries_that_used_the_resource(episodes, erin):
    knee, other = episodes
    # Consultant 56.25 + theatre nurses 48.00 + ward nurse 336.00 + physiotherapist 28.125.
    assert EpisodeCost.objects.get(episode=knee).capacity_variance == Decimal("468.375")

    change("CONSULTANT", erin, salaried=False)

    assert list(stale(closed_episodes()).values_list("pk", flat=True)) == [knee.pk]  # not the clinic's
    assert episode_costs_refresh() == 1
    summary = EpisodeCost.objects.get(episode=knee)
    # Was 468.375 in reports while the episode's page and the API said 412.125.
    assert summary.capacity_variance == cost_episode(knee).capacity_variance == Decimal("412.125")
    assert not summary.lines.get(resource__code="CONSULTANT", step__code="SURGERY").salaried
    assert episode_costs_refresh() == 0


def test_a_kind_or_unit_changed_recomputes_them_too_a_new_name_does_not(episodes, erin):
    knee, other = episodes

    change("CONSULTANT", erin, name="Consultant orthopaedic surgeon")
    assert not stale(closed_episodes()).exists()

    change("IMPLANT", erin, kind="equipment")
    assert list(stale(closed_episodes()).values_list("pk", flat=True)) == [knee.pk]
    assert episode_costs_refresh() == 1

    change("NURSE-CLINIC", erin, kind="overhead")
    assert list(stale(closed_episodes()).values_list("pk", flat=True)) == [other.pk]
