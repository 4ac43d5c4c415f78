"""The interactive API docs work in a real browser under the strict CSP, from local assets only."""

import pytest

from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_it_renders_swagger_ui_with_every_endpoint(page, live_server, alice):
    problems = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on(
        "request",
        lambda req: (
            problems.append(f"external request {req.url}")
            if not req.url.startswith(live_server.url) and not req.url.startswith("data:")
            else None
        ),
    )
    browser_login(page, live_server, "alice")

    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title")

    assert "CommonPath API" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock-summary-path", has_text="/api/v1/episodes/{id}/events/").count() >= 1
    assert page.locator(".opblock-summary-path", has_text="/api/v1/fhir/CarePlan/{id}").count() == 1
    assert not [p for p in problems if "Content Security Policy" in p or "external request" in p], problems
