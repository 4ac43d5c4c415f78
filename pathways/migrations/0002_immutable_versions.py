"""Published and retired pathway versions are immutable, held by the database.

PostgreSQL:
- a version that is not a draft cannot be updated or deleted, except the one
  transition published -> retired (status and retired_at only);
- stages, steps, their must-follow links and planned resources of a version that
  is not a draft cannot be updated or deleted (nor moved into such a version);
- pathway change history is append-only (the shared ``commonpath_refuse_change``).
SQLite: the same rules for UPDATE (DELETE is left to the services there, because
Django's test flush empties SQLite tables with DELETE; see accounts 0002).

INSERT into a published version is refused by the services, not here: test
factories build published versions row by row.
"""

from importlib import import_module

from django.db import migrations

history = import_module("accounts.migrations.0002_append_only_history")

REFUSE = "USING ERRCODE = 'insufficient_privilege'"

PG_SQL = f"""
CREATE OR REPLACE FUNCTION commonpath_version_frozen(vid bigint) RETURNS boolean AS $$
    SELECT COALESCE((SELECT status <> 'draft' FROM pathways_pathwayversion WHERE id = vid), false);
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION commonpath_step_frozen(sid bigint) RETURNS boolean AS $$
    SELECT COALESCE((SELECT v.status <> 'draft' FROM pathways_step s
                     JOIN pathways_pathwayversion v ON v.id = s.version_id WHERE s.id = sid), false);
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION commonpath_version_guard() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'draft' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- Nothing but status and retired_at may differ, and only published -> retired.
        IF (to_jsonb(NEW) - 'status' - 'retired_at') = (to_jsonb(OLD) - 'status' - 'retired_at')
           AND (
               (NEW.status = OLD.status AND NEW.retired_at IS NOT DISTINCT FROM OLD.retired_at)
               OR (OLD.status = 'published' AND NEW.status = 'retired')
           ) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'CommonPath: % of pathway version % (%) is refused: published and retired versions are immutable',
        TG_OP, OLD.id, OLD.status {REFUSE};
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION commonpath_version_content_guard() RETURNS trigger AS $$
DECLARE
    frozen boolean := false;
BEGIN
    IF TG_TABLE_NAME IN ('pathways_stage', 'pathways_step') THEN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN frozen := commonpath_version_frozen(OLD.version_id); END IF;
        IF TG_OP = 'UPDATE' AND NOT frozen THEN frozen := commonpath_version_frozen(NEW.version_id); END IF;
    ELSIF TG_TABLE_NAME = 'pathways_plannedresource' THEN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN frozen := commonpath_step_frozen(OLD.step_id); END IF;
        IF TG_OP = 'UPDATE' AND NOT frozen THEN frozen := commonpath_step_frozen(NEW.step_id); END IF;
    ELSIF TG_TABLE_NAME = 'pathways_step_must_follow' THEN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN frozen := commonpath_step_frozen(OLD.from_step_id); END IF;
        IF TG_OP = 'UPDATE' AND NOT frozen THEN frozen := commonpath_step_frozen(NEW.from_step_id); END IF;
    END IF;
    IF frozen THEN
        RAISE EXCEPTION 'CommonPath: % on % is refused: it belongs to a published or retired pathway version',
            TG_OP, TG_TABLE_NAME {REFUSE};
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS pathways_pathwayversion_guard ON pathways_pathwayversion;
CREATE TRIGGER pathways_pathwayversion_guard BEFORE UPDATE OR DELETE ON pathways_pathwayversion
    FOR EACH ROW EXECUTE FUNCTION commonpath_version_guard();
"""

CONTENT_TABLES = ["pathways_stage", "pathways_step", "pathways_plannedresource", "pathways_step_must_follow"]
HISTORY_TABLE = "pathways_pathwaychange"


def pg_content_trigger(table: str) -> str:
    return f"""
    DROP TRIGGER IF EXISTS {table}_frozen_guard ON {table};
    CREATE TRIGGER {table}_frozen_guard BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION commonpath_version_content_guard();
    """


def _sqlite_frozen(expr: str) -> str:
    return f"COALESCE((SELECT status <> 'draft' FROM pathways_pathwayversion WHERE id = {expr}), 0)"


def _sqlite_step_frozen(expr: str) -> str:
    return _sqlite_frozen(f"(SELECT version_id FROM pathways_step WHERE id = {expr})")


def _sqlite_raise(what: str) -> str:
    return f"SELECT RAISE(ABORT, 'CommonPath: UPDATE on {what} is refused: published and retired versions are immutable');"


VERSION_OTHER_COLUMNS = [
    "pathway_id",
    "number",
    "change_note",
    "created_by_id",
    "created_at",
    "published_by_id",
    "published_at",
    "effective_from",
]

SQLITE_SQL = [
    # A frozen version may change only status (published -> retired) and retired_at.
    "CREATE TRIGGER IF NOT EXISTS pathways_pathwayversion_frozen BEFORE UPDATE ON pathways_pathwayversion "
    "WHEN OLD.status <> 'draft' AND ("
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in VERSION_OTHER_COLUMNS)
    + " OR ((NEW.status IS NOT OLD.status OR NEW.retired_at IS NOT OLD.retired_at)"
    " AND NOT (OLD.status = 'published' AND NEW.status = 'retired'))"
    ") BEGIN " + _sqlite_raise("a pathway version") + " END;",
    "CREATE TRIGGER IF NOT EXISTS pathways_stage_frozen BEFORE UPDATE ON pathways_stage "
    f"WHEN {_sqlite_frozen('OLD.version_id')} OR {_sqlite_frozen('NEW.version_id')} "
    "BEGIN " + _sqlite_raise("a stage") + " END;",
    "CREATE TRIGGER IF NOT EXISTS pathways_step_frozen BEFORE UPDATE ON pathways_step "
    f"WHEN {_sqlite_frozen('OLD.version_id')} OR {_sqlite_frozen('NEW.version_id')} "
    "BEGIN " + _sqlite_raise("a step") + " END;",
    "CREATE TRIGGER IF NOT EXISTS pathways_plannedresource_frozen BEFORE UPDATE ON pathways_plannedresource "
    f"WHEN {_sqlite_step_frozen('OLD.step_id')} OR {_sqlite_step_frozen('NEW.step_id')} "
    "BEGIN " + _sqlite_raise("a planned resource") + " END;",
    "CREATE TRIGGER IF NOT EXISTS pathways_step_must_follow_frozen BEFORE UPDATE ON pathways_step_must_follow "
    f"WHEN {_sqlite_step_frozen('OLD.from_step_id')} OR {_sqlite_step_frozen('NEW.from_step_id')} "
    "BEGIN " + _sqlite_raise("a must-follow link") + " END;",
    *history.sqlite_append_only(HISTORY_TABLE),
]

SQLITE_TRIGGERS = [
    "pathways_pathwayversion_frozen",
    "pathways_stage_frozen",
    "pathways_step_frozen",
    "pathways_plannedresource_frozen",
    "pathways_step_must_follow_frozen",
    f"{HISTORY_TABLE}_no_update",
]


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(history.PG_FUNCTION)
            cursor.execute(PG_SQL)
            for table in CONTENT_TABLES:
                cursor.execute(pg_content_trigger(table))
            cursor.execute(history.pg_append_only(HISTORY_TABLE))
            history.pg_role_setup(cursor)
            history.revoke_history(cursor, HISTORY_TABLE)
        elif connection.vendor == "sqlite":
            for statement in SQLITE_SQL:
                cursor.execute(statement)


def backwards(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS {HISTORY_TABLE}_append_only ON {HISTORY_TABLE}")
            for table in CONTENT_TABLES:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_frozen_guard ON {table}")
            cursor.execute("DROP TRIGGER IF EXISTS pathways_pathwayversion_guard ON pathways_pathwayversion")
            cursor.execute("DROP FUNCTION IF EXISTS commonpath_version_content_guard()")
            cursor.execute("DROP FUNCTION IF EXISTS commonpath_version_guard()")
            cursor.execute("DROP FUNCTION IF EXISTS commonpath_step_frozen(bigint)")
            cursor.execute("DROP FUNCTION IF EXISTS commonpath_version_frozen(bigint)")
        elif connection.vendor == "sqlite":
            for name in SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_append_only_history"), ("pathways", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
