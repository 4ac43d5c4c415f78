"""A published version cannot be changed: not by the services, not in the admin, not with SQL."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from pathways import services
from pathways.models import PathwayVersion, PlannedResource, Stage, Step
from tests.conftest import login, require
from tests.pathways.builders import build_fracture


def test_it_refuses_to_edit_a_step_of_a_published_version(tkr, bob):
    with pytest.raises(ValidationError) as err:
        services.step_update(step=tkr["SURGERY"], actor=bob, window_max_minutes=60)

    assert "TKR version 1 is published" in str(err.value)
    assert "Draft a new version" in str(err.value)
    assert Step.objects.get(pk=tkr["SURGERY"].pk).window_max_minutes is None


@pytest.mark.parametrize(
    "attempt",
    [
        lambda o, u: services.stage_add(version=o["version"], name="Extra", actor=u),
        lambda o, u: services.step_add(stage=o["stages"]["WARD"], actor=u, code="NEW", name="New"),
        lambda o, u: services.step_remove(step=o["PHYSIO"], actor=u),
        lambda o, u: services.step_move(step=o["PHYSIO"], offset=-1, actor=u),
        lambda o, u: services.stage_update(stage=o["stages"]["WARD"], name="Ward", actor=u),
        lambda o, u: services.planned_resource_add(
            step=o["PHYSIO"], resource=o["WARD-NURSE"], quantity=Decimal("5"), actor=u
        ),
        lambda o, u: services.planned_resource_update(
            planned=o["SURGERY"].planned_resources.get(resource=o["IMPLANT"]), quantity=Decimal("2"), actor=u
        ),
        lambda o, u: services.planned_resource_remove(planned=o["PHYSIO"].planned_resources.get(), actor=u),
        lambda o, u: services.pathway_version_publish(version=o["version"], actor=u, note="again"),
    ],
    ids=[
        "stage_add",
        "step_add",
        "step_remove",
        "step_move",
        "stage_update",
        "pr_add",
        "pr_update",
        "pr_remove",
        "publish",
    ],
)
def test_every_edit_service_refuses_a_published_version(tkr, bob, attempt):
    steps, planned = Step.objects.count(), list(PlannedResource.objects.values_list("quantity", flat=True))

    with pytest.raises(ValidationError):
        attempt(tkr, bob)

    assert Step.objects.count() == steps
    assert list(PlannedResource.objects.values_list("quantity", flat=True)) == planned


def test_it_refuses_to_edit_a_retired_version(tkr, bob):
    services.pathway_version_retire(
        version=tkr["version"], actor=bob, note="Superseded by the enhanced recovery pathway"
    )

    with pytest.raises(ValidationError, match="is retired"):
        services.stage_add(version=tkr["version"], name="Extra", actor=bob)


def test_the_admin_shows_a_published_step_read_only_and_refuses_a_post(client, tkr, erin):
    login(client, erin)
    url = f"/admin/pathways/step/{tkr['SURGERY'].pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    assert b"Total knee replacement" in page.content
    assert b'name="_save"' not in page.content

    response = client.post(url, {"code": "SURGERY", "name": "Changed", "window_max_minutes": "60"})

    assert response.status_code == 403
    assert Step.objects.get(pk=tkr["SURGERY"].pk).name == "Total knee replacement"


def test_the_admin_lets_an_admin_edit_a_draft_and_records_it(client, tkr, erin, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    stage = draft.stages.get(name="Theatre")
    login(client, erin)

    response = client.post(
        f"/admin/pathways/stage/{stage.pk}/change/", {"version": draft.pk, "order": 2, "name": "Operating theatre"}
    )

    assert response.status_code == 302
    assert Stage.objects.get(pk=stage.pk).name == "Operating theatre"
    assert draft.changes.filter(action="admin_change_stage", actor=erin).exists()


def _raw(sql: str, params: list) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_database_refuses_a_raw_update_of_a_published_step(tkr):
    with pytest.raises(DatabaseError, match="immutable|published or retired"):
        _raw("UPDATE pathways_step SET window_max_minutes = 60 WHERE id = %s", [tkr["SURGERY"].pk])
    with pytest.raises(DatabaseError):
        _raw("UPDATE pathways_plannedresource SET quantity = 1 WHERE step_id = %s", [tkr["SURGERY"].pk])
    with pytest.raises(DatabaseError):
        _raw("UPDATE pathways_stage SET name = 'x' WHERE version_id = %s", [tkr["version"].pk])
    with pytest.raises(DatabaseError):
        _raw("UPDATE pathways_pathwayversion SET change_note = 'rewritten' WHERE id = %s", [tkr["version"].pk])
    with pytest.raises(DatabaseError):
        _raw("UPDATE pathways_pathwayversion SET status = 'draft' WHERE id = %s", [tkr["version"].pk])

    assert Step.objects.get(pk=tkr["SURGERY"].pk).window_max_minutes is None
    assert PathwayVersion.objects.get(pk=tkr["version"].pk).status == "published"


def test_the_database_allows_a_published_version_to_be_retired(tkr):
    _raw(
        "UPDATE pathways_pathwayversion SET status = 'retired', retired_at = CURRENT_TIMESTAMP WHERE id = %s",
        [tkr["version"].pk],
    )

    assert PathwayVersion.objects.get(pk=tkr["version"].pk).status == "retired"
    with pytest.raises(DatabaseError):
        _raw("UPDATE pathways_pathwayversion SET status = 'published' WHERE id = %s", [tkr["version"].pk])


def test_the_database_lets_drafts_change(tkr, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    step = draft.steps.get(code="SURGERY")

    _raw("UPDATE pathways_step SET window_max_minutes = 60 WHERE id = %s", [step.pk])

    assert Step.objects.get(pk=step.pk).window_max_minutes == 60


def test_the_database_refuses_raw_deletes_of_published_content_on_postgresql(tkr):
    require(connection.vendor == "postgresql", "DELETE triggers exist on PostgreSQL only")

    with pytest.raises(DatabaseError):
        _raw("DELETE FROM pathways_plannedresource WHERE step_id = %s", [tkr["SURGERY"].pk])
    with pytest.raises(DatabaseError):
        _raw("DELETE FROM pathways_pathwayversion WHERE id = %s", [tkr["version"].pk])
    with pytest.raises(DatabaseError):
        _raw("DELETE FROM pathways_pathwaychange WHERE version_id = %s", [tkr["version"].pk])

    assert tkr["SURGERY"].planned_resources.count() == 5


def test_the_database_refuses_changes_to_published_must_follow_links(org, bob):
    version = build_fracture(org["ORTHO"], bob)
    mobilise = version.steps.get(code="MOBILISE")

    with pytest.raises(DatabaseError):
        _raw("UPDATE pathways_step_must_follow SET to_step_id = to_step_id WHERE from_step_id = %s", [mobilise.pk])
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError):
            _raw("DELETE FROM pathways_step_must_follow WHERE from_step_id = %s", [mobilise.pk])

    assert list(mobilise.must_follow.values_list("code", flat=True)) == ["SURGERY"]
