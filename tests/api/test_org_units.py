from tests.api.conftest import problem


def test_it_lists_the_org_units_in_the_callers_scope_with_parent_codes(api, alice):
    response = api(alice).get("/api/v1/org-units/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["results"] == [
        {"code": "ORTHO", "name": "Trauma & Orthopaedics", "kind": "specialty", "parent": "SURG"},
        {"code": "ORTHO-W7", "name": "Ward 7", "kind": "ward", "parent": "ORTHO"},
    ]


def test_it_shows_the_whole_trust_to_an_admin_and_filters_by_kind_and_parent(api, erin):
    client = api(erin)

    assert client.get("/api/v1/org-units/").json()["count"] == 7
    wards = client.get("/api/v1/org-units/?kind=ward").json()["results"]
    assert [u["code"] for u in wards] == ["ED", "ORTHO-W7"]  # tree order: RCH/MED/... before RCH/SURG/...
    under_surgery = client.get("/api/v1/org-units/?parent=SURG").json()["results"]
    assert [u["code"] for u in under_surgery] == ["ORTHO"]


def test_it_rejects_an_unknown_kind_with_a_field_error(api, erin):
    response = api(erin).get("/api/v1/org-units/?kind=galaxy")

    assert response.status_code == 400
    assert problem(response)["errors"][0]["field"] == "kind"


def test_it_pages_with_count_next_and_previous_and_caps_the_page_size(api, erin, settings):
    settings.API_MAX_PAGE_SIZE = 3
    client = api(erin)

    first = client.get("/api/v1/org-units/?limit=50").json()
    assert first["count"] == 7
    assert len(first["results"]) == 3
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert [u["code"] for u in second["results"]] != [u["code"] for u in first["results"]]
    assert second["previous"] is not None


def test_it_refuses_a_limit_that_is_not_a_positive_number(api, erin):
    for bad in ("0", "-1", "ten"):
        response = api(erin).get(f"/api/v1/org-units/?limit={bad}")
        assert response.status_code == 400
        assert problem(response)["errors"][0]["field"] == "limit"


def test_it_lists_in_a_fixed_number_of_queries(api, erin, django_assert_max_num_queries):
    client = api(erin)
    with django_assert_max_num_queries(8):
        client.get("/api/v1/org-units/")


def test_it_denies_a_user_without_any_role(api, nobody):
    response = api(nobody).get("/api/v1/org-units/")

    assert response.status_code == 403
    assert "results" not in response.json()
