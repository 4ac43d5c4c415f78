"""The catalogue and the pathway page: what each role sees, in a bounded number of queries."""

import re

import pytest

from pathways import services
from tests.conftest import login
from tests.pathways.builders import build_fracture


def test_the_catalogue_lists_published_pathways_for_every_role(client, tkr, alice, carol, fred):
    for user in (alice, carol, fred):
        login(client, user)
        page = client.get("/pathways/")
        assert page.status_code == 200
        assert b"TKR" in page.content
        assert b"Published v1" in page.content


def test_the_catalogue_searches_and_filters(client, tkr, org, bob):
    build_fracture(org["ORTHO"], bob, code="NOF", publish=False)
    services.pathway_update(pathway=tkr["pathway"], actor=bob, name=tkr["pathway"].name, specialty="Orthopaedics")
    login(client, bob)

    assert b"NOF" not in client.get("/pathways/?q=knee").content
    assert b"TKR" in client.get("/pathways/?q=knee").content
    drafts = client.get("/pathways/?status=draft").content
    assert b"NOF" in drafts and b"TKR" not in drafts
    by_specialty = client.get("/pathways/?specialty=Orthogeriatrics").content
    assert b"NOF" in by_specialty and b">TKR<" not in by_specialty


def test_drafts_are_hidden_from_clinicians_and_managers(client, org, bob, alice, carol, fred):
    build_fracture(org["ORTHO"], bob, code="NOF", publish=False)

    for user in (alice, carol):
        login(client, user)
        assert b"NOF" not in client.get("/pathways/").content
        assert client.get("/pathways/NOF/v1/").status_code == 404
        assert client.get("/pathways/NOF/").status_code == 404
    login(client, fred)
    assert b"NOF" in client.get("/pathways/").content


def test_the_catalogue_query_count_does_not_grow_with_pathways(client, org, bob, django_assert_max_num_queries):
    for n in range(3):
        build_fracture(org["ORTHO"], bob, code=f"NOF-{n}")
    login(client, bob)
    client.get("/pathways/")  # warm the session

    with django_assert_max_num_queries(9) as few:
        client.get("/pathways/")
    for n in range(3, 9):
        build_fracture(org["ORTHO"], bob, code=f"NOF-{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get("/pathways/")
    assert page.content.count(b"Published v1") == 9


def test_the_pathway_page_shows_the_timeline_with_windows_and_mandatory_marks(client, org, bob, alice):
    build_fracture(org["ORTHO"], bob)
    login(client, alice)

    page = client.get("/pathways/NOF/").content.decode()

    assert "Orthogeriatric assessment" in page
    assert "0 min to 3 days after the episode start" in page
    assert "0 min to 36 h after the episode start" in page
    assert "0 min to 1 day after SURGERY" in page
    assert "Must follow:</span> ASSESS" in page
    assert page.count("Mandatory</span>") == 3
    assert "NICE QS16 statement 3" in page
    assert 'hx-get="/costing/versions/' in page


def test_the_pathway_page_query_count_does_not_grow_with_steps(client, tkr, bob, django_assert_max_num_queries):
    login(client, bob)
    client.get("/pathways/TKR/")
    with django_assert_max_num_queries(20) as small:
        client.get("/pathways/TKR/")
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    ward = draft.stages.get(name="Ward and rehabilitation")
    for n in range(6):
        step = services.step_add(stage=ward, actor=bob, code=f"EXTRA-{n}", name=f"Extra {n}")
        services.planned_resource_add(step=step, resource=tkr["WARD-NURSE"], quantity=10, actor=bob)
    services.pathway_version_publish(version=draft, actor=bob, note="more steps")

    with django_assert_max_num_queries(len(small.captured_queries)):
        page = client.get("/pathways/TKR/")
    assert b"EXTRA-5" in page.content


def test_the_version_history_links_a_diff(client, tkr, bob, alice):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    services.step_update(step=draft.steps.get(code="SURGERY"), actor=bob, window_max_minutes=2880)
    services.pathway_version_publish(version=draft, actor=bob, note="Surgery within 2 days")
    login(client, alice)

    page = client.get("/pathways/TKR/").content.decode()
    assert "Published version 2" in page
    assert "Surgery within 2 days" in page
    assert re.search(r'href="/pathways/TKR/v2/diff/1/"', page)

    diff = client.get("/pathways/TKR/v2/diff/1/").content.decode()
    assert "within 2 days after the episode start" in diff
    assert "timing" in diff
    assert 'hx-get="/costing/versions/' in diff


def test_a_retired_version_points_to_the_current_one(client, tkr, bob, alice):
    draft = services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    services.pathway_version_publish(version=draft, actor=bob, note="v2")
    login(client, alice)

    page = client.get("/pathways/TKR/v1/").content.decode()

    assert "Retired version 1" in page
    assert "The current version is" in page


def test_the_export_downloads_json(client, tkr, alice):
    login(client, alice)

    response = client.get("/pathways/TKR/v1/export.json")

    assert response["Content-Disposition"] == 'attachment; filename="TKR-v1.json"'
    assert response.json()["pathway"]["code"] == "TKR"


@pytest.mark.parametrize("url", ["/pathways/NOPE/", "/pathways/TKR/v9/", "/pathways/TKR/v1/diff/9/"])
def test_unknown_pathways_and_versions_are_404(client, tkr, alice, url):
    login(client, alice)
    assert client.get(url).status_code == 404
