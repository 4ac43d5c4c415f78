"""Publishing freezes a draft after checking it makes sense; it retires the version it replaces."""

import pytest
import time_machine
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from pathways import services
from pathways.models import PathwayVersion
from tests.pathways.builders import build_fracture


@pytest.fixture
def draft(org, bob):
    return build_fracture(org["ORTHO"], bob, publish=False)


def _messages(err) -> str:
    return " | ".join(err.value.messages)


def test_it_publishes_a_valid_draft_with_who_when_and_why(draft, bob):
    with time_machine.travel("2025-06-02 09:30:00+01:00", tick=False):
        version = services.pathway_version_publish(
            version=draft, actor=bob, note="Agreed at the T&O governance meeting"
        )

    assert version.status == "published"
    assert version.published_by == bob
    assert version.effective_from.isoformat() == "2025-06-02"
    change = version.changes.get(action="publish")
    assert (change.actor, change.note) == (bob, "Agreed at the T&O governance meeting")
    assert AuditEvent.objects.filter(action="pathway.publish", object_id=str(version.pk), actor=bob).exists()


def test_it_refuses_a_version_without_steps(org, bob):
    pathway = services.pathway_create(code="EMPTY", name="Empty", owner_unit=org["ORTHO"], actor=bob)

    with pytest.raises(ValidationError) as err:
        services.pathway_version_publish(version=pathway.versions.get(), actor=bob, note="go")

    assert "at least one step" in _messages(err)
    assert pathway.versions.get().status == "draft"


def test_it_refuses_without_a_change_note(draft, bob):
    with pytest.raises(ValidationError) as err:
        services.pathway_version_publish(version=draft, actor=bob, note="  ")

    assert "note" in err.value.message_dict


def test_it_refuses_a_must_follow_cycle_and_names_it(draft, bob):
    assess = draft.steps.get(code="ASSESS")
    # The service refuses such a link outright; a bad row could still come from the admin.
    assess.must_follow.add(draft.steps.get(code="MOBILISE"))

    with pytest.raises(ValidationError) as err:
        services.pathway_version_publish(version=draft, actor=bob, note="go")

    assert "goes round in a circle: ASSESS -> MOBILISE -> SURGERY -> ASSESS" in _messages(err)


def test_it_refuses_an_anchor_outside_the_version(org, bob, draft):
    other = build_fracture(org["ORTHO"], bob, code="OTHER")
    mobilise = draft.steps.get(code="MOBILISE")
    # The service refuses such an anchor outright; a bad row could still come from
    # the admin or an old import, and publish must catch it.
    with pytest.raises(ValidationError) as err:
        services.step_update(step=mobilise, actor=bob, anchor=other.steps.get(code="SURGERY"))
    assert "anchor" in err.value.message_dict
    type(mobilise).objects.filter(pk=mobilise.pk).update(anchor=other.steps.get(code="SURGERY"))

    with pytest.raises(ValidationError) as err:
        services.pathway_version_publish(version=draft, actor=bob, note="go")

    assert "MOBILISE: its timing anchor is a step of another version." in _messages(err)


def test_it_refuses_anchors_that_go_round_in_a_circle(draft, bob):
    surgery = draft.steps.get(code="SURGERY")

    with pytest.raises(ValidationError) as err:
        services.step_update(step=surgery, actor=bob, anchor=draft.steps.get(code="MOBILISE"))

    assert "anchor" in err.value.message_dict


def test_publishing_a_new_version_retires_the_old_one_in_the_same_transaction(org, bob):
    v1 = build_fracture(org["ORTHO"], bob)
    v2 = services.pathway_version_draft(pathway=v1.pathway, actor=bob, note="Tighter surgery window")
    services.step_update(step=v2.steps.get(code="SURGERY"), actor=bob, window_max_minutes=1440)

    services.pathway_version_publish(version=v2, actor=bob, note="Surgery within 24 h")

    v1.refresh_from_db()
    assert v1.status == "retired"
    assert v1.retired_at is not None
    assert v1.changes.filter(action="retire", note="Replaced by version 2").exists()
    assert list(PathwayVersion.objects.filter(pathway=v1.pathway).published()) == [v2]
    # The old version keeps its plan: episodes that started on it still follow it.
    assert v1.steps.get(code="SURGERY").window_max_minutes == 2160


def test_a_failed_publish_leaves_the_published_version_in_place(org, bob):
    v1 = build_fracture(org["ORTHO"], bob)
    v2 = services.pathway_version_draft(pathway=v1.pathway, actor=bob)
    for step in v2.steps.exclude(code="ASSESS"):
        services.step_update(step=step, actor=bob, must_follow=[])
    services.step_update(step=v2.steps.get(code="MOBILISE"), actor=bob, anchor=None)
    for code in ("MOBILISE", "SURGERY", "ASSESS"):
        services.step_remove(step=v2.steps.get(code=code), actor=bob)

    with pytest.raises(ValidationError):
        services.pathway_version_publish(version=v2, actor=bob, note="go")

    v1.refresh_from_db()
    assert v1.status == "published"


def test_it_retires_a_pathway_with_a_reason(org, bob):
    v1 = build_fracture(org["ORTHO"], bob)

    with pytest.raises(ValidationError):
        services.pathway_version_retire(version=v1, actor=bob, note="")
    services.pathway_version_retire(version=v1, actor=bob, note="Service moved to the regional centre")

    v1.refresh_from_db()
    assert v1.status == "retired"
    assert v1.changes.filter(action="retire", note="Service moved to the regional centre", actor=bob).exists()
    with pytest.raises(ValidationError, match="Only a published version"):
        services.pathway_version_retire(version=v1, actor=bob, note="again")
