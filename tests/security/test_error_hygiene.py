"""Check 9: failures show a generic page with a correlation id that is in the log; forbidden looks like missing."""

import json
import re
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import api_token_create
from tests.conftest import login
from tests.variances.factories import build_pathway, start

pytestmark = pytest.mark.django_db

SECRET_DETAIL = "relation secret_internal_table at 10.9.8.7"


def without_tokens(text: str) -> str:
    """A page minus what differs on every request (correlation id, CSRF tokens)."""
    text = re.sub(r"[0-9a-f]{32}", "<id>", text)
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", text)


def test_it_answers_a_crash_with_a_generic_page_and_a_reference_that_is_in_the_log(alice, log_output):
    client = login(Client(raise_request_exception=False), alice)

    with mock.patch("pathways.selectors.home_panel", side_effect=RuntimeError(SECRET_DETAIL)):
        response = client.get(reverse("home"))

    page = response.content.decode()
    request_id = response["X-Request-ID"]
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in page
    assert f"Reference: <code>{request_id}</code>" in page
    assert SECRET_DETAIL not in page
    assert "Traceback" not in page and "RuntimeError" not in page
    logged = log_output.getvalue()
    assert f"ERROR django.request [{request_id}] Internal Server Error: /" in logged
    assert SECRET_DETAIL in logged  # the operator gets the detail, in the log only


def test_it_answers_an_api_crash_with_problem_json_and_the_same_reference(alice, log_output):
    token = api_token_create(user=alice, name="test")[1]
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    with mock.patch("accounts.api.OrgUnitList.get_queryset", side_effect=RuntimeError(SECRET_DETAIL)):
        response = client.get("/api/v1/org-units/")

    body = json.loads(response.content)
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert body["request_id"] == response["X-Request-ID"]
    assert SECRET_DETAIL not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert f"[{body['request_id']}]" in log_output.getvalue()


@pytest.fixture
def ortho_episode(org, alice):
    version = build_pathway(org["ORTHO"], user=alice)
    return start(version, org["ORTHO"], alice, ref="PT-4X7K2Q")


def test_it_shows_another_units_episode_page_exactly_like_a_missing_one(client, dora, ortho_episode):
    login(client, dora)

    forbidden = client.get(reverse("variances:episode_detail", args=[ortho_episode.pk]))
    missing = client.get(reverse("variances:episode_detail", args=[ortho_episode.pk + 1000]))

    assert forbidden.status_code == missing.status_code == 404
    assert without_tokens(forbidden.content.decode()) == without_tokens(missing.content.decode())
    assert "PT-4X7K2Q" not in forbidden.content.decode()


def test_it_answers_an_api_client_about_another_units_episode_exactly_like_a_missing_one(sue, ortho_episode):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=sue)[1]}")

    forbidden = client.get(f"/api/v1/episodes/{ortho_episode.pk}/")
    missing = client.get(f"/api/v1/episodes/{ortho_episode.pk + 1000}/")

    assert forbidden.status_code == missing.status_code == 404
    forbidden_body, missing_body = json.loads(forbidden.content), json.loads(missing.content)
    for body in (forbidden_body, missing_body):
        body.pop("request_id")
        body.pop("instance")  # the path asked for
    assert forbidden_body == missing_body
    assert "PT-4X7K2Q" not in forbidden.content.decode()


def test_it_answers_an_unknown_page_with_the_generic_not_found_page(client, alice):
    response = login(client, alice).get("/no-such-page/")

    assert response.status_code == 404
    assert "There is nothing here, or it is not available to you." in response.content.decode()
