"""Authoring in the browser, through the HTMX endpoints: leads edit drafts; nobody else can."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from pathways import services
from pathways.models import Pathway, PlannedResource, Step
from tests.conftest import login
from tests.pathways.builders import build_fracture

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def draft(org, bob):
    return build_fracture(org["ORTHO"], bob, publish=False)


def test_a_lead_creates_a_pathway_and_lands_on_its_draft(client, org, bob):
    login(client, bob)

    response = client.post(
        "/pathways/new/",
        {"code": "copd-ex", "name": "COPD exacerbation", "specialty": "Respiratory", "owner_unit": org["ORTHO"].pk},
    )

    assert response.status_code == 302
    assert response["Location"] == "/pathways/COPD-EX/v1/"
    page = client.get(response["Location"]).content.decode()
    assert "Draft version 1" in page
    assert "Add a stage" in page
    assert "A pathway needs at least one step before it can be published." in page


def test_the_new_pathway_form_keeps_input_and_explains_errors(client, org, bob, tkr):
    login(client, bob)

    page = client.post("/pathways/new/", {"code": "TKR", "name": "Another knee", "owner_unit": org["ORTHO"].pk})

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="id_code_error"' in html
    assert "There is already a pathway TKR (Elective total knee replacement): choose another code." in html
    assert 'value="Another knee"' in html
    assert Pathway.objects.filter(code="TKR").count() == 1


def test_a_lead_cannot_choose_a_unit_outside_their_scope(client, org, bob):
    login(client, bob)

    page = client.post("/pathways/new/", {"code": "ED-X", "name": "ED", "owner_unit": org["ED"].pk})

    assert "Select a valid choice" in page.content.decode()
    assert not Pathway.objects.filter(code="ED-X").exists()


def test_htmx_add_step_returns_the_plan_retargeted(client, draft, bob):
    login(client, bob)
    stage = draft.stages.get(name="Theatre")

    form = client.get(f"/pathways/stages/{stage.pk}/steps/new/", **HX)
    assert b'id="add-step-' in form.content
    assert b"<html" not in form.content

    response = client.post(
        f"/pathways/stages/{stage.pk}/steps/new/",
        {
            "code": "xray",
            "name": "Check X-ray",
            "step_type": "investigation",
            "criticality": 2,
            "expected_count": "1",
            "anchor": draft.steps.get(code="SURGERY").pk,
            "window_min_minutes": 0,
            "window_max_minutes": 1440,
        },
        **HX,
    )

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#plan"
    assert "XRAY" in response.content.decode()
    assert "0 min to 1 day after SURGERY" in response.content.decode()
    assert draft.changes.filter(action="step_add", actor=bob).exists()


def test_a_bad_step_comes_back_with_errors_by_the_field_and_input_kept(client, draft, bob):
    login(client, bob)
    stage = draft.stages.get(name="Theatre")

    response = client.post(
        f"/pathways/stages/{stage.pk}/steps/new/",
        {
            "code": "LATE",
            "name": "Late review",
            "step_type": "assessment",
            "criticality": 1,
            "expected_count": "1",
            "window_min_minutes": 600,
            "window_max_minutes": 60,
        },
        **HX,
    )

    html = response.content.decode()
    assert "HX-Retarget" not in response
    assert 'id="id_window_max_minutes_error"' in html
    assert "The latest time must not be before the earliest time." in html
    assert 'value="Late review"' in html
    assert not Step.objects.filter(code="LATE").exists()


def test_a_lead_edits_reorders_and_removes_steps_and_resources(client, draft, bob, tkr):
    login(client, bob)
    mobilise = draft.steps.get(code="MOBILISE")

    client.post(
        f"/pathways/steps/{mobilise.pk}/edit/",
        {
            "code": "MOBILISE",
            "name": "Mobilise with physio",
            "step_type": "therapy",
            "mandatory": "on",
            "criticality": 4,
            "expected_count": "1",
            "anchor": draft.steps.get(code="SURGERY").pk,
            "window_min_minutes": 0,
            "window_max_minutes": 1440,
            "must_follow": [draft.steps.get(code="SURGERY").pk],
        },
        **HX,
    )
    client.post(
        f"/pathways/steps/{mobilise.pk}/resources/new/",
        {"resource": tkr["PHYSIOTHERAPIST"].pk, "quantity": "30", "headcount": 1},
        **HX,
    )
    moved = client.post(f"/pathways/steps/{mobilise.pk}/move/", {"direction": "up"}, **HX)
    planned = PlannedResource.objects.get(step=mobilise)
    client.post(
        f"/pathways/planned/{planned.pk}/edit/",
        {"resource": tkr["PHYSIOTHERAPIST"].pk, "quantity": "45", "headcount": 2},
        **HX,
    )

    mobilise.refresh_from_db()
    assert mobilise.name == "Mobilise with physio"
    assert PlannedResource.objects.get(pk=planned.pk).headcount == 2
    html = moved.content.decode()
    assert html.index("MOBILISE") < html.index("<strong>SURGERY</strong>")

    client.post(f"/pathways/planned/{planned.pk}/remove/", **HX)
    removed = client.post(f"/pathways/steps/{mobilise.pk}/remove/", **HX)
    assert not Step.objects.filter(pk=mobilise.pk).exists()
    plan, status = removed.content.decode().split('<div id="plan-status"')
    assert "MOBILISE" not in plan
    assert "MOBILISE removed." in status  # said beside the plan, which has lost it


def test_removing_an_anchor_step_is_refused_with_the_reason(client, draft, bob):
    login(client, bob)

    response = client.post(f"/pathways/steps/{draft.steps.get(code='SURGERY').pk}/remove/", **HX)

    assert "SURGERY is the timing anchor of MOBILISE. Change their anchor first." in response.content.decode()
    assert draft.steps.filter(code="SURGERY").exists()


def test_publishing_needs_a_note_and_then_freezes_the_draft(client, draft, bob):
    login(client, bob)
    url = "/pathways/NOF/v1/publish/"

    assert "0 min to 36 h" not in client.get(url).content.decode()  # no previous version: no diff
    missing = client.post(url, {"note": ""})
    assert "This field is required." in missing.content.decode()

    response = client.post(url, {"note": "Agreed with orthogeriatrics"})

    assert response.status_code == 302
    page = client.get("/pathways/NOF/").content.decode()
    assert "Published version 1" in page
    assert "Draft a new version" in page
    assert "Add a stage" not in page


def test_drafting_a_new_version_from_the_page(client, tkr, bob):
    login(client, bob)
    page = client.get("/pathways/TKR/").content.decode()
    assert '<a class="button primary" href="/pathways/TKR/draft/">Draft a new version</a>' in page
    confirm = client.get("/pathways/TKR/draft/").content.decode()
    assert "What this draft is for" in confirm
    assert "a copy of <a" in confirm and "version 1</a> (published)" in confirm
    assert not tkr["pathway"].versions.filter(number=2).exists()

    response = client.post("/pathways/TKR/draft/", {"note": "Enhanced recovery"})

    assert response["Location"] == "/pathways/TKR/v2/"
    draft = tkr["pathway"].versions.get(number=2)
    assert draft.steps.count() == 4
    assert draft.change_note == "Enhanced recovery"
    history = client.get("/pathways/TKR/v2/").content.decode()
    assert "drafted this version: Enhanced recovery" in history
    again = client.post("/pathways/TKR/draft/", follow=True)
    assert "already has a draft (version 2)" in again.content.decode()


def test_publishing_ahead_of_time_says_which_version_new_episodes_follow_until_then(client, tkr, bob):
    login(client, bob)
    client.post("/pathways/TKR/draft/", {"note": "Enhanced recovery"})
    takes_effect = timezone.localdate() + timedelta(days=30)

    response = client.post(
        "/pathways/TKR/v2/publish/",
        {"note": "Enhanced recovery", "effective_from": takes_effect.isoformat()},
        follow=True,
    )

    assert (
        f"TKR version 2 is published. It takes effect on {takes_effect:%-d %b %Y}: until then, new episodes follow "
        "version 1." in response.content.decode()
    )


def test_a_draft_note_too_long_comes_back_kept_and_explained(client, tkr, bob):
    login(client, bob)

    html = client.post("/pathways/TKR/draft/", {"note": "x" * 501}).content.decode()

    assert 'id="id_note_error"' in html
    assert "Ensure this value has at most 500 characters (it has 501)." in html
    assert "x" * 501 in html
    assert not tkr["pathway"].versions.filter(number=2).exists()


def test_the_publish_page_shows_the_cost_change_beside_the_step_changes(client, tkr, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    services.planned_resource_update(
        planned=draft.steps.get(code="SURGERY").planned_resources.get(resource=tkr["THEATRE"]),
        quantity=100,
        actor=bob,
    )
    login(client, bob)

    html = client.get("/pathways/TKR/v2/publish/").content.decode()

    assert f'hx-get="/costing/versions/{tkr["version"].pk}/{draft.pk}/cost-delta/"' in html
    assert "90 minutes" in html and "100 minutes" in html
    assert "90 minute<" not in html


def test_a_lead_retires_a_version_with_a_reason(client, tkr, bob):
    login(client, bob)

    client.post("/pathways/TKR/v1/retire/", {"note": "Replaced by the regional pathway"})

    tkr["version"].refresh_from_db()
    assert tkr["version"].status == "retired"


def test_a_published_version_has_no_authoring_controls_even_for_its_lead(client, tkr, bob):
    login(client, bob)

    page = client.get("/pathways/TKR/v1/").content.decode()

    assert "Add a stage" not in page
    assert "/steps/new/" not in page
    response = client.post(
        f"/pathways/stages/{tkr['stages']['WARD'].pk}/steps/new/",
        {"code": "X", "name": "X", "step_type": "other", "criticality": 1, "expected_count": 1},
        **HX,
    )
    assert "TKR v1 is published and cannot be changed: draft a new version." in response.content.decode()
    assert not Step.objects.filter(code="X").exists()


def test_a_clinician_sees_no_authoring_controls_and_gets_403(client, draft, alice, bob):
    services.pathway_version_publish(version=draft, actor=bob, note="go")
    login(client, alice)

    page = client.get("/pathways/NOF/").content.decode()
    catalogue = client.get("/pathways/").content.decode()

    for control in ("New pathway", "Draft a new version", ">Retire<", "Edit details", "Import JSON"):
        assert control not in page + catalogue
    for url in ("/pathways/new/", "/pathways/import/", "/retire/", "/draft/", "/edit/", "/publish/"):
        assert f'"{url}' not in page + catalogue and url not in page
    step = draft.steps.get(code="SURGERY")
    stage = draft.stages.first()
    for method, url in [
        ("get", "/pathways/new/"),
        ("get", "/pathways/import/"),
        ("post", "/pathways/NOF/draft/"),
        ("get", "/pathways/NOF/edit/"),
        ("get", "/pathways/NOF/v1/publish/"),
        ("get", "/pathways/NOF/v1/retire/"),
        ("get", "/pathways/NOF/v1/stages/new/"),
        ("get", f"/pathways/stages/{stage.pk}/edit/"),
        ("post", f"/pathways/stages/{stage.pk}/move/"),
        ("get", f"/pathways/stages/{stage.pk}/steps/new/"),
        ("get", f"/pathways/steps/{step.pk}/edit/"),
        ("post", f"/pathways/steps/{step.pk}/remove/"),
        ("get", f"/pathways/steps/{step.pk}/resources/new/"),
    ]:
        assert getattr(client, method)(url).status_code == 403, url


def test_a_lead_of_another_unit_cannot_author_this_pathway(client, draft, org):
    from tests.conftest import make_user

    ed_lead = make_user("edlead", "clinical_lead", org["ED"])
    login(client, ed_lead)

    assert client.get(f"/pathways/steps/{draft.steps.get(code='SURGERY').pk}/edit/").status_code == 403
    page = client.get("/pathways/NOF/v1/").content.decode()
    assert "Add a stage" not in page


def test_an_admin_can_author_anywhere(client, draft, erin):
    login(client, erin)

    response = client.post("/pathways/NOF/v1/stages/new/", {"name": "Discharge"}, **HX)

    assert "Discharge" in response.content.decode()


def test_import_json_from_the_browser(client, org, bob, tkr):
    from django.core.files.uploadedfile import SimpleUploadedFile

    login(client, bob)
    exported = client.get("/pathways/TKR/v1/export.json").content

    response = client.post(
        "/pathways/import/",
        {
            "file": SimpleUploadedFile("tkr.json", exported, "application/json"),
            "code": "TKR-2",
            "owner_unit": org["ORTHO"].pk,
        },
    )

    assert response["Location"] == "/pathways/TKR-2/v1/"
    bad = client.post(
        "/pathways/import/",
        {"file": SimpleUploadedFile("x.json", b"{not json", "application/json"), "owner_unit": org["ORTHO"].pk},
    )
    assert "This is not a JSON document" in bad.content.decode()


def test_an_identifier_in_an_imported_document_s_change_note_is_named_as_such(client, org, bob, tkr):
    from django.core.files.uploadedfile import SimpleUploadedFile

    login(client, bob)
    document = json.loads(client.get("/pathways/TKR/v1/export.json").content)
    document["change_note"] = "Agreed after the case of 943 476 5919"

    page = client.post(
        "/pathways/import/",
        {
            "file": SimpleUploadedFile("tkr.json", json.dumps(document).encode(), "application/json"),
            "code": "TKR-2",
            "owner_unit": org["ORTHO"].pk,
        },
    ).content.decode()

    assert "The document&#x27;s change_note: This text contains what looks like an NHS number" in page
    assert "943 476 5919" not in page
    assert not Pathway.objects.filter(code="TKR-2").exists()
