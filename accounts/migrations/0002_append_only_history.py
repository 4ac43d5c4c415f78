"""Append-only history, enforced by the database.

PostgreSQL:
- ``commonpath_refuse_change()``: a trigger function that refuses UPDATE and
  DELETE; other apps attach it to their history tables (variance revisions).
- the ``commonpath_app`` role (NOLOGIN; the web and worker login roles are made
  members of it, see README "Production") gets DML on every table, but not
  UPDATE, DELETE or TRUNCATE on history tables.
SQLite (the embedded default): a trigger refuses UPDATE. DELETE is left to the
services there, because Django's test flush empties SQLite tables with DELETE.
"""

from django.db import migrations

APP_ROLE = "commonpath_app"

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION commonpath_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'CommonPath: % on % is refused: this history is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def pg_append_only(table: str) -> str:
    return f"""
    DROP TRIGGER IF EXISTS {table}_append_only ON {table};
    CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION commonpath_refuse_change();
    """


def sqlite_append_only(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'CommonPath: UPDATE on {table} is refused: this history is append-only'); END;",
    ]


# Grant only on tables the role has no right on yet: a blanket "GRANT ... ON ALL TABLES"
# from a later migration calling this helper would hand back UPDATE and DELETE on the
# history tables that earlier migrations revoked.
PG_GRANT_UNGRANTED = f"""
DO $$
DECLARE t record;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND NOT has_table_privilege('{APP_ROLE}', c.oid, 'SELECT')
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO {APP_ROLE}', t.name);
    END LOOP;
END $$;
"""


# Roles belong to the whole cluster, not to one database: two databases migrated at once (a
# test database per pytest-xdist worker, or two deployments on one server) may both find the
# role missing, and the second CREATE then fails with duplicate_object or, when both run at
# the same instant, unique_violation on pg_authid.
PG_CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;
"""


def pg_role_setup(cursor) -> None:
    cursor.execute(PG_CREATE_ROLE)
    cursor.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    cursor.execute(PG_GRANT_UNGRANTED)
    cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    cursor.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}")
    cursor.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")


def revoke_history(cursor, table: str) -> None:
    cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE}")


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    table = "accounts_auditevent"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_FUNCTION)
            cursor.execute(pg_append_only(table))
            pg_role_setup(cursor)
            revoke_history(cursor, table)
        elif connection.vendor == "sqlite":
            for statement in sqlite_append_only(table):
                cursor.execute(statement)


def backwards(apps, schema_editor):
    connection = schema_editor.connection
    table = "accounts_auditevent"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        elif connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
