"""Variance history cannot be rewritten, and episode data cannot be deleted, even below Django.

PostgreSQL triggers refuse UPDATE/DELETE on revisions and DELETE on episodes,
events, detections, variances and reason codes; the application role has no such
privileges either. SQLite (embedded mode) refuses UPDATE on revisions.
"""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from tests.conftest import require
from tests.variances.conftest import T0
from tests.variances.factories import event, reason
from variances import services
from variances.detection import evaluate_episode
from variances.models import Episode, ReasonCode, Variance, VarianceRevision


@pytest.fixture
def variance(episode, alice, clock):
    clock.move_to(T0 + timedelta(hours=31))
    event(episode, "SURGERY", at=T0 + timedelta(hours=30), actor=alice)
    evaluate_episode(episode.pk)
    v = Variance.objects.get(episode=episode, variance_type="delay")
    return services.variance_explain(
        variance=v, cause="system", reason=reason(), valence="negative", rationale="List overran", actor=alice
    )


def refused(sql: str, params=()) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except DatabaseError as exc:
        return "append-only" in str(exc) or "refused" in str(exc)
    return False


def test_it_refuses_raw_sql_update_of_a_revision(variance):
    assert refused("UPDATE variances_variancerevision SET reason = 'rewritten' WHERE variance_id = %s", [variance.pk])
    assert not VarianceRevision.objects.filter(reason="rewritten").exists()


def test_it_refuses_queryset_update_of_revisions(variance):
    with pytest.raises(DatabaseError), transaction.atomic():
        VarianceRevision.objects.filter(variance=variance).update(snapshot={})
    assert VarianceRevision.objects.get(variance=variance, number=2).snapshot["rationale"] == "List overran"


def test_it_refuses_raw_sql_delete_of_a_revision_on_postgresql(variance):
    require(connection.vendor == "postgresql", "DELETE is refused by PostgreSQL triggers (SQLite relies on services)")
    assert refused("DELETE FROM variances_variancerevision WHERE variance_id = %s", [variance.pk])
    assert VarianceRevision.objects.filter(variance=variance).count() == 2


@pytest.mark.parametrize(
    "table", ["variances_variance", "variances_detection", "variances_stepevent", "variances_episode"]
)
def test_it_refuses_deleting_episode_data_on_postgresql(variance, table):
    require(connection.vendor == "postgresql", "DELETE is refused by PostgreSQL triggers (SQLite relies on services)")
    column = "id" if table == "variances_episode" else "episode_id"
    assert refused(f"DELETE FROM {table} WHERE {column} = %s", [variance.episode_id])  # noqa: S608
    assert Episode.objects.filter(pk=variance.episode_id).exists()
    assert Variance.objects.filter(pk=variance.pk).exists()


def test_it_refuses_deleting_a_reason_code_on_postgresql(seeded_reasons):
    require(connection.vendor == "postgresql", "DELETE is refused by PostgreSQL triggers")
    with pytest.raises(DatabaseError), transaction.atomic():
        ReasonCode.objects.filter(code="patient-refuses").delete()
    assert ReasonCode.objects.filter(code="patient-refuses").exists()


def test_the_application_role_holds_no_update_or_delete_on_history_on_postgresql(db):
    require(connection.vendor == "postgresql", "the commonpath_app role exists on PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege('commonpath_app', 'variances_variancerevision', 'UPDATE'),"
            " has_table_privilege('commonpath_app', 'variances_variancerevision', 'DELETE'),"
            " has_table_privilege('commonpath_app', 'variances_variance', 'DELETE'),"
            " has_table_privilege('commonpath_app', 'variances_variance', 'UPDATE'),"
            " has_table_privilege('commonpath_app', 'variances_variancerevision', 'INSERT')"
        )
        assert cursor.fetchone() == (False, False, False, True, True)
