"""A published version's edit forms do not open: the lead is told so at once and offered a new draft."""

import pytest

from pathways import services
from pathways.models import Stage, Step
from tests.conftest import login

HX = {"HTTP_HX_REQUEST": "true"}
REFUSAL = "TKR v1 is published and cannot be changed: draft a new version."


def _form_urls(tkr) -> list[str]:
    planned = tkr["SURGERY"].planned_resources.first()
    return [
        "/pathways/TKR/v1/stages/new/",
        f"/pathways/stages/{tkr['stages']['WARD'].pk}/edit/",
        f"/pathways/stages/{tkr['stages']['WARD'].pk}/steps/new/",
        f"/pathways/steps/{tkr['SURGERY'].pk}/edit/",
        f"/pathways/steps/{tkr['SURGERY'].pk}/resources/new/",
        f"/pathways/planned/{planned.pk}/edit/",
    ]


@pytest.mark.parametrize("index", range(6))
def test_opening_an_edit_form_of_a_published_version_is_refused_with_a_way_forward(client, tkr, bob, index):
    login(client, bob)

    html = client.get(_form_urls(tkr)[index]).content.decode()

    assert REFUSAL in html
    assert 'href="/pathways/TKR/draft/"' in html
    assert "<form" not in html.split("<main", 1)[1]


def test_the_htmx_fragment_says_the_same_and_points_to_the_open_draft(client, tkr, bob):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    login(client, bob)

    html = client.get(f"/pathways/steps/{tkr['SURGERY'].pk}/edit/", **HX).content.decode()

    assert "<html" not in html
    assert REFUSAL in html
    assert f'href="/pathways/TKR/v{draft.number}/">Open draft version {draft.number}</a>' in html


def test_a_post_to_a_published_version_is_refused_the_same_way_and_saves_nothing(client, tkr, bob):
    login(client, bob)

    html = client.post(
        f"/pathways/steps/{tkr['SURGERY'].pk}/edit/",
        {"code": "SURGERY", "name": "Renamed", "step_type": "procedure", "criticality": 1, "expected_count": 1},
    ).content.decode()

    assert REFUSAL in html
    assert Step.objects.get(pk=tkr["SURGERY"].pk).name != "Renamed"
    assert not Stage.objects.filter(version=tkr["version"], name="Renamed").exists()


def test_a_retired_version_says_it_is_retired(client, tkr, bob):
    services.pathway_version_retire(version=tkr["version"], actor=bob, note="Withdrawn")
    login(client, bob)

    html = client.get(f"/pathways/stages/{tkr['stages']['WARD'].pk}/edit/").content.decode()

    assert "TKR v1 is retired and cannot be changed: draft a new version." in html


def test_a_clinician_still_gets_403(client, tkr, alice):
    login(client, alice)

    assert client.get(f"/pathways/steps/{tkr['SURGERY'].pk}/edit/").status_code == 403
