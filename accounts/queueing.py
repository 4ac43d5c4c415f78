"""Queueing background tasks from a request so that a broker outage neither fails nor loses anything.

Celery's ``delay_on_commit`` publishes from a plain ``on_commit`` callback: with the
broker down, the transaction has committed but the callback raises, and the client
gets a 500 for a record that was saved. ``enqueue_on_commit`` sends from a *robust*
callback instead and only logs when the broker cannot be reached. The row the task
works on stays in its waiting state (queued, pending, ...) and is the outbox: each
kind of task has a beat sweeper that sends again what is still waiting
(``costing.sweep_report_runs``, ``variances.sweep_import_jobs``,
``variances.detect_all_active``, ``accounts.sweep_audit_checks``), and every task
is idempotent, so a message sent twice does the work once.

How long a publish may block a request with the broker down is bounded in
settings (``CELERY_TASK_PUBLISH_RETRY_POLICY``, the broker's connect timeout).
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger("commonpath.tasks")


def enqueue_on_commit(task, *args) -> None:
    """``task.delay(*args)`` once the current transaction commits; never an error for the request."""
    transaction.on_commit(partial(send, task, *args), robust=True)


def send(task, *args) -> bool:
    """Send ``task`` now; ``False`` (and a warning, no trace) when the broker is unreachable."""
    try:
        task.delay(*args)
    except BrokerUnavailable as exc:
        logger.warning(
            "broker unavailable (%s): %s%r not sent; its sweeper sends it later", type(exc).__name__, task.name, args
        )
        return False
    return True
