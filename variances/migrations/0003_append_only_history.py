"""Nothing in this app is hard-deleted, and variance history is never rewritten.

PostgreSQL: triggers (reusing ``commonpath_refuse_change()`` from accounts 0002)
refuse UPDATE and DELETE on variance revisions, and DELETE on episodes, events,
their quantities, detections, variances and reason codes (retire a code instead).
The ``commonpath_app`` role additionally loses UPDATE/DELETE/TRUNCATE on the
revision table and DELETE/TRUNCATE on the others, so neither ``QuerySet.update()``
nor raw SQL from the application can get round the rule.

SQLite (embedded default): a trigger refuses UPDATE on revisions; DELETE is left
to the services, as in accounts 0002, because Django's test flush deletes rows.
"""

import importlib

from django.db import migrations

_history = importlib.import_module("accounts.migrations.0002_append_only_history")

REVISIONS = "variances_variancerevision"
NO_DELETE = [
    "variances_episode",
    "variances_stepevent",
    "variances_eventquantity",
    "variances_detection",
    "variances_variance",
    "variances_reasoncode",
]


def pg_refuse_delete(table: str) -> str:
    return f"""
    DROP TRIGGER IF EXISTS {table}_no_delete ON {table};
    CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION commonpath_refuse_change();
    """


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_history.PG_FUNCTION)
            cursor.execute(_history.pg_append_only(REVISIONS))
            _history.pg_role_setup(cursor)
            _history.revoke_history(cursor, REVISIONS)
            for table in NO_DELETE:
                cursor.execute(pg_refuse_delete(table))
                cursor.execute(f"REVOKE DELETE, TRUNCATE ON {table} FROM {_history.APP_ROLE}")
        elif connection.vendor == "sqlite":
            for statement in _history.sqlite_append_only(REVISIONS):
                cursor.execute(statement)


def backwards(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS {REVISIONS}_append_only ON {REVISIONS}")
            for table in NO_DELETE:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
        elif connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER IF EXISTS {REVISIONS}_no_update")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_append_only_history"),
        ("variances", "0002_variance_review_required"),
    ]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
