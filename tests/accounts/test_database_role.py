"""The application's database role cannot rewrite history: no UPDATE, DELETE or TRUNCATE.

Migrations create the ``commonpath_app`` role (the web and worker logins are
members of it) and revoke those rights on every append-only table. These tests
act *as that role* (``SET ROLE``), as CI must prove.
"""

from contextlib import contextmanager

import pytest
from django.db import DatabaseError, connection, transaction

from accounts.audit import audit_record, verify_chain
from accounts.models import AuditEvent
from tests.conftest import require

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

APP_ROLE = "commonpath_app"
MUST_BE_APPEND_ONLY = {"accounts_auditevent", "variances_variancerevision", "pathways_pathwaychange"}


@pytest.fixture(autouse=True)
def postgres_only():
    require(connection.vendor == "postgresql", "the database role check needs PostgreSQL (DATABASE_URL)")


@contextmanager
def as_app_role():
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {APP_ROLE}")
        try:
            yield cursor
        finally:
            cursor.execute("RESET ROLE")


def append_only_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE %s AND NOT t.tgisinternal",
            ["%\\_append\\_only"],
        )
        return {row[0] for row in cursor.fetchall()}


def refused(cursor, sql: str) -> str:
    """Run ``sql`` in a savepoint and return the database's refusal (fails if it was allowed)."""
    try:
        with transaction.atomic():
            cursor.execute(sql)
    except DatabaseError as exc:
        return str(exc)
    raise AssertionError(f"{APP_ROLE} was allowed to run: {sql}")


def test_it_guards_every_history_table_with_the_append_only_trigger():
    assert MUST_BE_APPEND_ONLY.issubset(append_only_tables())


@pytest.mark.parametrize("operation", ["UPDATE {t} SET id = id", "DELETE FROM {t}", "TRUNCATE {t}"])
def test_it_refuses_the_app_role_rewriting_any_history_table(operation, alice):
    audit_record(action="login", actor=alice, obj=alice)

    with as_app_role() as cursor:
        for table in sorted(append_only_tables()):
            message = refused(cursor, operation.format(t=table))
            # The privilege, not only the trigger, refuses it (the trigger's message starts "CommonPath:").
            assert f"permission denied for table {table}" in message


def test_it_lets_the_app_role_append_and_read_the_audit_trail(alice):
    with as_app_role():
        audit_record(action="login", actor=alice, obj=alice)
        audit_record(action="logout", actor=alice, obj=alice)
        count, bad, _ = verify_chain()

    assert (count, bad) == (2, None)
    assert AuditEvent.objects.count() == 2


def test_it_lets_the_app_role_change_ordinary_tables(org):
    with as_app_role() as cursor:
        cursor.execute("UPDATE accounts_orgunit SET name = name || '' WHERE code = 'ORTHO'")
        assert cursor.rowcount == 1


def test_it_leaves_the_app_role_without_rights_to_change_history_even_by_grant_check():
    with connection.cursor() as cursor:
        for table in sorted(append_only_tables()):
            for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
                cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [APP_ROLE, table, privilege])
                assert cursor.fetchone()[0] is False, f"{APP_ROLE} holds {privilege} on {table}"
            cursor.execute("SELECT has_table_privilege(%s, %s, 'INSERT')", [APP_ROLE, table])
            assert cursor.fetchone()[0] is True, f"{APP_ROLE} cannot append to {table}"


def test_it_refuses_the_app_role_deleting_rows_that_are_withdrawn_never_deleted():
    """Episodes and variances are closed or withdrawn, never deleted (their migration revokes DELETE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE %s AND NOT t.tgisinternal",
            ["%\\_no\\_delete"],
        )
        tables = sorted(row[0] for row in cursor.fetchall())
        assert "variances_variance" in tables
        for table in tables:
            for privilege in ("DELETE", "TRUNCATE"):
                cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [APP_ROLE, table, privilege])
                assert cursor.fetchone()[0] is False, f"{APP_ROLE} holds {privilege} on {table}"
