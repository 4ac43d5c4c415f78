"""POST /api/v1/reports/ (202 + Location, rate-limited) and GET /api/v1/reports/{id}/."""

from datetime import timedelta

from django.utils import timezone

from costing.models import ReportRun
from tests.api.conftest import error_fields, problem
from tests.api.factories import build_tkr, record_variance, start_episode
from variances import services


def request_body(unit="ORTHO", kind="variance", days=30):
    today = timezone.localdate()
    return {
        "kind": kind,
        "parameters": {"org_unit": unit, "date_from": str(today - timedelta(days=days)), "date_to": str(today)},
    }


def closed_episodes(org, alice, count=3):
    version = build_tkr(org["ORTHO"])
    for n in range(count):
        episode = start_episode(version, org["ORTHO"], alice, ref=f"PT-00{n}9A", hours_ago=80)
        record_variance(episode, alice, rationale=f"Rationale {n}")
        services.episode_close(episode=episode, ended_at=timezone.now() - timedelta(hours=2), actor=alice)


def test_it_accepts_a_report_request_with_a_location_to_poll(api, bob, org):
    response = api(bob).post("/api/v1/reports/", request_body(), format="json")

    assert response.status_code == 202, response.content
    run = ReportRun.objects.get()
    body = response.json()
    assert response["Location"] == f"/api/v1/reports/{run.pk}/"
    assert (body["id"], body["kind"], body["status"], body["joined"], body["result"]) == (
        run.pk,
        "variance",
        "queued",
        False,
        None,
    )
    polled = api(bob).get(response["Location"]).json()
    assert (polled["status"], polled["progress"]) == ("queued", 0)


def test_it_joins_an_identical_request_still_queued(api, bob, alice, org):
    first = api(bob).post("/api/v1/reports/", request_body(), format="json").json()

    second = api(alice).post("/api/v1/reports/", request_body(), format="json")

    assert second.status_code == 202
    assert (second.json()["id"], second.json()["joined"]) == (first["id"], True)
    assert ReportRun.objects.count() == 1


def test_it_gives_the_result_with_small_cells_suppressed_for_a_manager(
    api, alice, bob, carol, org, django_capture_on_commit_callbacks
):
    closed_episodes(org, alice, count=3)
    with django_capture_on_commit_callbacks(execute=True):  # the task runs in-process on commit
        location = api(carol).post("/api/v1/reports/", request_body("SURG"), format="json")["Location"]
    with django_capture_on_commit_callbacks(execute=True):
        lead_location = api(bob).post("/api/v1/reports/", request_body("ORTHO"), format="json")["Location"]

    manager_view = api(carol).get(location).json()
    lead_view = api(bob).get(lead_location).json()

    assert manager_view["status"] == "succeeded"
    assert manager_view["result"]["suppressed"] is True
    assert manager_view["result"]["summary"]["episodes"] == "*"  # 3 episodes: a small cell
    assert lead_view["result"]["summary"]["episodes"] == 3
    for text in ("Rationale 0", "alice", "Adeyemi"):
        assert text not in api(carol).get(location).content.decode()


def test_it_hides_runs_on_units_outside_the_callers_scope(api, bob, dora, org):
    location = api(bob).post("/api/v1/reports/", request_body("ORTHO"), format="json")["Location"]

    response = api(dora).get(location)

    assert response.status_code == 404
    assert "parameters" not in problem(response)


def test_it_refuses_a_report_on_a_unit_outside_the_callers_scope(api, dora, org):
    response = api(dora).post("/api/v1/reports/", request_body("ORTHO"), format="json")

    assert response.status_code == 400
    assert error_fields(response) == {"parameters.org_unit": "You cannot run reports on this unit."}
    assert ReportRun.objects.count() == 0


def test_it_names_bad_parameters(api, bob, org):
    body = request_body()
    body["kind"] = "gossip"
    body["parameters"].update(date_from="yesterday", pathways=["NOPE"], colour="red")

    response = api(bob).post("/api/v1/reports/", body, format="json")

    assert response.status_code == 400
    assert set(error_fields(response)) == {"kind", "parameters.date_from", "parameters.colour"}


def test_it_names_unknown_pathways_from_the_report_service(api, bob, org):
    body = request_body()
    body["parameters"]["pathways"] = ["NOPE"]

    response = api(bob).post("/api/v1/reports/", body, format="json")

    assert response.status_code == 400
    assert error_fields(response) == {"parameters.pathways": "Unknown pathway: NOPE."}


def test_it_rate_limits_report_requests_per_client_with_retry_after(api, bob, alice, org, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"reports": "2/min"}}
    client = api(bob)

    statuses = [client.post("/api/v1/reports/", request_body(days=d), format="json").status_code for d in (1, 2, 3)]

    assert statuses == [202, 202, 429]
    limited = client.post("/api/v1/reports/", request_body(days=4), format="json")
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert problem(limited)["title"] == "Too Many Requests"
    assert api(alice).post("/api/v1/reports/", request_body(days=5), format="json").status_code == 202  # per client
    assert client.get(f"/api/v1/reports/{ReportRun.objects.first().pk}/").status_code == 200  # reads not limited
