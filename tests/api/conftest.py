"""API test helpers: token-authenticated clients for the personas in tests/conftest.py."""

import pytest
from django.core.cache import cache
from django.core.servers.basehttp import ThreadedWSGIServer
from rest_framework.test import APIClient

from accounts.services import api_token_create

# Django's test server listens with a backlog of 10 connections; the concurrency
# tests open 50 at once, which a production server (gunicorn: 2048) would queue.
# Set before any live server starts in this session.
ThreadedWSGIServer.request_queue_size = 128


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The personas' passwords play no part in API tests; PBKDF2 would spend seconds per test on them."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Report throttling counts per client in the cache: each test starts with none used."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def token_for(db):
    def make(user, **kwargs) -> str:
        _token, raw = api_token_create(user=user, **kwargs)
        return raw

    return make


@pytest.fixture
def api(token_for):
    """``api(alice)``: a client sending alice's bearer token; ``api()``: no credentials."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return client

    return make


def problem(response) -> dict:
    """The problem+json body of an error response (asserting that it is one)."""
    assert response["Content-Type"] == "application/problem+json", response.content[:300]
    body = response.json()
    assert body["status"] == response.status_code
    assert "Traceback" not in response.content.decode()
    return body


def error_fields(response) -> dict[str, str]:
    return {e["field"]: e["detail"] for e in problem(response)["errors"]}
