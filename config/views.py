"""Project-level pages: the role-aware home page and the health check."""

import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.permissions import any_member, primary_role
from costing import selectors as costing_selectors
from pathways import selectors as pathway_selectors
from variances import selectors as variance_selectors


@any_member
def home(request):
    """Each role lands on what it can do today."""
    role = primary_role(request.user)
    context = {"role": role}
    context.update(pathway_selectors.home_panel(request.user))
    context.update(variance_selectors.home_panel(request.user))
    context.update(costing_selectors.home_panel(request.user))
    return render(request, "home.html", context)


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the class name says which
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up", "vendor": connection.vendor, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_broker_and_worker() -> tuple[dict, dict]:
    if not settings.CELERY_BROKER_URL:
        return {"status": "not configured", "mode": "tasks run in-process"}, {"status": "in-process"}
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=1)
    except Exception as exc:  # kombu raises several transport-specific classes
        return {"status": "down", "error": type(exc).__name__}, {"status": "unknown"}
    # Worker pings cost a broadcast round trip: cache a positive answer briefly.
    workers = cache.get("healthz:workers")
    if workers is None:
        for attempt in range(2):
            try:
                # One reply shows a worker is up: stop at the first instead of waiting out the whole
                # second for others (a web process answered nothing else meanwhile).
                replies = app.control.ping(timeout=1.0, limit=1) or []
                break
            except Exception as exc:
                # The first use of a pooled connection from before a broker restart fails once;
                # the retry takes a new one. Failing twice, the broker really is in trouble.
                if attempt:
                    return {"status": "up"}, {"status": "down", "error": type(exc).__name__}
        workers = len(replies)
        if workers:
            cache.set("healthz:workers", workers, 15)
    worker = {"status": "up", "count": workers} if workers else {"status": "down", "count": 0}
    return {"status": "up"}, worker


@login_not_required
@require_GET
def healthz(request):
    database = _check_database()
    broker, worker = _check_broker_and_worker()
    healthy = (
        database["status"] == "up"
        and broker["status"] in ("up", "not configured")
        and worker["status"]
        in (
            "up",
            "in-process",
        )
    )
    body = {"status": "ok" if healthy else "degraded", "database": database, "broker": broker, "worker": worker}
    return JsonResponse(body, status=200 if healthy else 503)


healthz.access_rule = ("public",)
