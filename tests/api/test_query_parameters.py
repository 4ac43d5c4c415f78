"""Each endpoint takes the query parameters its schema documents, each once, and refuses any other.

A misspelt filter that were ignored would answer every record as if it had been applied.
"""

from drf_spectacular.generators import SchemaGenerator

from accounts.api_query import documented_query_parameters
from tests.api.conftest import error_fields
from tests.api.factories import build_tkr, start_episode


def test_a_misspelt_filter_is_refused_naming_the_parameters_the_endpoint_takes(api, alice, org):
    start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    response = api(alice).get("/api/v1/variances/?stauts=unexplained")

    assert response.status_code == 400
    assert error_fields(response) == {
        "stauts": "Unknown query parameter. This endpoint takes: cause, episode, limit, offset, org_unit, pathway, "
        "reason, since, status, step, type."
    }


def test_a_parameter_given_twice_is_refused_rather_than_one_value_silently_chosen(api, alice, org):
    response = api(alice).get("/api/v1/episodes/?status=active&status=completed")

    assert response.status_code == 400
    assert error_fields(response) == {"status": "Give this parameter once."}


def test_documented_parameters_still_filter(api, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    response = api(alice).get("/api/v1/episodes/?status=active&limit=5&offset=0")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [episode.pk]


def test_an_endpoint_without_parameters_refuses_any(api, alice, org):
    episode = start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)

    read = api(alice).get(f"/api/v1/episodes/{episode.pk}/?expand=events")
    write = api(alice).post(f"/api/v1/episodes/{episode.pk}/events/?dry_run=true", {}, format="json")

    assert (read.status_code, write.status_code) == (400, 400)
    assert error_fields(read) == {"expand": "Unknown query parameter. This endpoint takes none."}
    assert error_fields(write) == {"dry_run": "Unknown query parameter. This endpoint takes none."}


def test_a_stranger_learns_nothing_about_parameters_before_signing_in(api):
    response = api().get("/api/v1/variances/?stauts=unexplained")

    assert response.status_code == 401


def test_every_operation_in_the_schema_has_its_parameters_known():
    """The refusal reads the same schema as /api/schema/: no operation is left unchecked."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = sum(1 for methods in schema["paths"].values() for method in methods if method != "parameters")

    assert len(documented_query_parameters()) == operations
