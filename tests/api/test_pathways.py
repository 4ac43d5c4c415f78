"""GET /api/v1/pathways/, /pathways/{code}/ and /pathways/{code}/versions/{number}/."""

from pathways.models import PathwayVersion
from tests.api.conftest import problem
from tests.api.factories import build_tkr


def test_it_shows_the_published_version_in_full_with_its_expected_cost(api, alice, org):
    build_tkr(org["ORTHO"])

    response = api(alice).get("/api/v1/pathways/TKR/")

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "TKR"
    assert body["version"] == 1
    assert body["status"] == "published"
    assert body["owner_unit"] == "ORTHO"
    assert body["expected_cost"]["amount"] == "4167.125"
    assert body["expected_cost"]["currency"] == "GBP"
    assert body["expected_cost"]["missing_rates"] == []
    assert [s["name"] for s in body["stages"]] == ["Admission and surgery", "Ward and rehabilitation"]
    surgery = body["stages"][0]["steps"][1]
    assert surgery["code"] == "SURGERY"
    assert surgery["timing"] == {"anchor": None, "min_minutes": 60, "max_minutes": 1440}
    assert surgery["must_follow"] == ["PREOP"]
    assert surgery["standard_cost"] == {"cost": "3017.75", "expected_cost": "3017.75"}
    nurses = next(r for r in surgery["planned_resources"] if r["resource"] == "THEATRE-NURSE")
    assert (nurses["headcount"], nurses["quantity"], nurses["unit"]) == (2, "90.000", "minute")
    physio = body["stages"][1]["steps"][1]
    assert physio["timing"]["anchor"] == "SURGERY"
    assert physio["standard_cost"] == {"cost": "28.125", "expected_cost": "56.25"}


def test_it_lists_pathways_with_their_current_version_and_count(api, dora, org):
    build_tkr(org["ORTHO"])
    build_tkr(org["ED"], code="SEPSIS-ED", status=PathwayVersion.Status.DRAFT)

    body = api(dora).get("/api/v1/pathways/").json()

    # dora is a clinician: she sees the published pathway of another unit, not a draft of her own unit.
    assert body["count"] == 1
    assert body["results"] == [
        {
            "code": "TKR",
            "name": "Elective total knee replacement",
            "specialty": "Orthopaedics",
            "owner_unit": "ORTHO",
            "current_version": 1,
        }
    ]


def test_it_filters_pathways_by_owning_unit_subtree_and_specialty(api, erin, org):
    build_tkr(org["ORTHO"])
    build_tkr(org["ED"], code="SEPSIS-ED")
    client = api(erin)

    assert [p["code"] for p in client.get("/api/v1/pathways/?org_unit=SURG").json()["results"]] == ["TKR"]
    assert [p["code"] for p in client.get("/api/v1/pathways/?org_unit=MED").json()["results"]] == ["SEPSIS-ED"]
    assert client.get("/api/v1/pathways/?specialty=orthopaedics").json()["count"] == 2
    unknown = client.get("/api/v1/pathways/?org_unit=NOPE")
    assert unknown.status_code == 400
    assert problem(unknown)["errors"][0]["field"] == "org_unit"


def test_it_shows_drafts_only_to_the_authors_of_the_owning_unit(api, alice, bob, dora, org):
    published = build_tkr(org["ORTHO"])
    build_tkr(org["ORTHO"], number=2, status=PathwayVersion.Status.DRAFT, pathway=published.pathway)

    assert api(bob).get("/api/v1/pathways/TKR/versions/2/").json()["status"] == "draft"
    for outsider in (alice, dora):
        response = api(outsider).get("/api/v1/pathways/TKR/versions/2/")
        assert response.status_code == 404
        assert "stages" not in problem(response)
    # The current version is still the published one.
    assert api(bob).get("/api/v1/pathways/TKR/").json()["version"] == 1
    assert api(alice).get("/api/v1/pathways/TKR/versions/1/").json()["expected_cost"]["amount"] == "4167.125"


def test_it_answers_404_for_a_pathway_without_a_published_version(api, bob, org):
    build_tkr(org["ORTHO"], status=PathwayVersion.Status.DRAFT)

    response = api(bob).get("/api/v1/pathways/TKR/")

    assert response.status_code == 404
    assert problem(response)["detail"] == "No published pathway with this identifier is available to you."


def test_it_reads_a_pathway_in_a_bounded_number_of_queries(api, alice, org, django_assert_max_num_queries):
    build_tkr(org["ORTHO"])
    build_tkr(org["ORTHO"], code="TKR-2")
    client = api(alice)

    with django_assert_max_num_queries(16):
        assert client.get("/api/v1/pathways/TKR/").status_code == 200
    with django_assert_max_num_queries(8):
        assert client.get("/api/v1/pathways/").json()["count"] == 2


def test_it_refuses_writes_to_pathways(api, bob, org):
    build_tkr(org["ORTHO"])

    response = api(bob).post("/api/v1/pathways/", {"code": "NEW"}, format="json")

    assert response.status_code == 405
    assert problem(response)["title"] == "Method Not Allowed"
