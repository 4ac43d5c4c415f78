"""Send report reads to a read replica when ``REPORTS_DATABASE_URL`` is set.

Report queries run inside ``using_reports_replica()`` (costing/selectors.py wraps
the report computations in it); everything else, and every write, stays on
``default``.
"""

import contextvars
from contextlib import contextmanager

_reporting = contextvars.ContextVar("commonpath_reporting", default=False)


@contextmanager
def using_reports_replica():
    token = _reporting.set(True)
    try:
        yield
    finally:
        _reporting.reset(token)


class ReportsReplicaRouter:
    def db_for_read(self, model, **hints):
        return "reports" if _reporting.get() else None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
