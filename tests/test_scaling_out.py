"""Settings for more than one web process: a cache they share (README "Scaling out")."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, require


def _caches_with(env: dict[str, str]) -> dict:
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps(s.CACHES['default']))"
    )
    clean = {k: v for k, v in os.environ.items() if k != "CACHE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_keeps_a_cache_per_process_unless_cache_url_is_set():
    assert _caches_with({})["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"

    shared = _caches_with({"CACHE_URL": "redis://cache.internal:6379/1"})
    assert shared == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache.internal:6379/1",
    }


@pytest.mark.broker
def test_it_shares_api_rate_limits_between_processes_through_cache_url():
    """A client's report requests counted by one web process are seen by another."""
    broker = os.environ.get("CELERY_BROKER_URL", "")
    require(broker.startswith("redis://"), "a shared cache needs Redis (CELERY_BROKER_URL=redis://...)")
    cache_url = broker  # Django's cache keys (":1:...") cannot collide with Celery's
    script = (
        "import django, sys; django.setup(); from django.core.cache import cache; "
        "key = 'throttle_reports_test-client'; "
        "cache.set(key, ['t1'], 60) if sys.argv[1] == 'write' else print(cache.get(key))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "CACHE_URL": cache_url}
    for mode in ("write", "read"):
        result = subprocess.run(
            [sys.executable, "-c", script, mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['t1']"
