"""Report reads go to the read replica when one is configured; writes never do.

A "reports" alias is opened here as a second connection to the test database,
which is what a streaming replica is to the application: the same data behind
another connection. Each test captures the SQL sent on each connection.
"""

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.db import connections, router
from django.test.utils import CaptureQueriesContext

from config.routers import ReportsReplicaRouter, using_reports_replica
from costing.models import EpisodeCost
from costing.reports import ReportParameters, cost_report, variance_report
from tests.conftest import ROOT
from tests.costing.factories import at, record_knee_actuals
from tests.pathways.tkr import build_tkr
from variances.models import Episode, ReasonCode, Variance

WRITES = ("INSERT", "UPDATE", "DELETE", "COPY")


@pytest.fixture
def replica(settings):
    """The "reports" alias and the router, as REPORTS_DATABASE_URL configures them.

    The alias is a connection of its own to the test database (registered on
    ``connections`` at run time, so that Django's test isolation lets it open).
    """
    primary = connections["default"]
    reports = type(primary)({**primary.settings_dict}, alias="reports")
    connections["reports"] = reports
    settings.DATABASE_ROUTERS = ["config.routers.ReportsReplicaRouter"]
    try:
        yield reports
    finally:
        reports.close()
        del connections["reports"]


def sql_of(captured) -> list[str]:
    return [q["sql"].lstrip().upper() for q in captured.captured_queries]


@pytest.mark.django_db
def test_it_reads_from_the_replica_inside_using_reports_replica(replica):
    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(replica) as reports:  # noqa: SIM117
        with using_reports_replica():
            codes = list(ReasonCode.objects.filter(code="service-not-available").values_list("code", flat=True))
            assert ReasonCode.objects.all().db == "reports"

    assert codes == ["service-not-available"]  # the replica holds the same data
    assert len(reports) == 1 and "VARIANCES_REASONCODE" in sql_of(reports)[0]
    assert len(primary) == 0


@pytest.mark.django_db
def test_it_reads_from_the_primary_outside_the_block(replica):
    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(replica) as reports:
        with using_reports_replica():
            pass
        assert ReasonCode.objects.filter(code="limited-time").exists()

    assert len(primary) == 1
    assert len(reports) == 0


@pytest.mark.django_db
def test_it_never_writes_to_the_replica_even_inside_the_block(replica, org):
    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(replica) as reports:  # noqa: SIM117
        with using_reports_replica():
            ReasonCode.objects.create(code="theatre-list-cancelled", display="Theatre list cancelled", pathway=None)
            ReasonCode.objects.filter(code="theatre-list-cancelled").update(retired=True)
            assert router.db_for_write(Episode) == "default"

    assert any(sql.startswith("INSERT") for sql in sql_of(primary))
    assert any(sql.startswith("UPDATE") for sql in sql_of(primary))
    assert not [sql for sql in sql_of(reports) if sql.startswith(WRITES)]


def test_it_never_migrates_the_replica():
    replica_router = ReportsReplicaRouter()

    assert replica_router.allow_migrate("default", "variances") is True
    assert replica_router.allow_migrate("reports", "variances") is False


def test_it_leaves_routing_to_django_when_not_reporting():
    replica_router = ReportsReplicaRouter()

    assert replica_router.db_for_read(Episode) is None
    with using_reports_replica():
        assert replica_router.db_for_read(Episode) == "reports"
        with using_reports_replica():
            assert replica_router.db_for_read(Episode) == "reports"
        assert replica_router.db_for_read(Episode) == "reports"  # a nested block leaves the outer one on
    assert replica_router.db_for_read(Episode) is None


@pytest.fixture
def costed_knee(transactional_db, org, alice):
    tkr = build_tkr(org["ORTHO"], financial_year=2025)
    with time_machine.travel(at(2025, 7, 1), tick=False):
        record_knee_actuals(tkr, unit=org["ORTHO-W7"], clinician=alice, started_at=at(2025, 6, 2, 8))
    return ReportParameters(org_unit="RCH", date_from=date(2025, 4, 1), date_to=date(2026, 3, 31))


def test_it_computes_the_variance_report_entirely_on_the_replica(costed_knee, replica):
    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(replica) as reports:
        result = variance_report(costed_knee)

    assert result["summary"]["episodes"] == 1
    assert result["summary"]["variances"] == Variance.objects.current().count() > 0  # read back from the primary
    assert len(reports) > 5
    assert len(primary) == 0


def test_it_refreshes_cost_summaries_on_the_primary_and_aggregates_them_on_the_replica(costed_knee, replica):
    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(replica) as reports:
        result = cost_report(costed_knee)

    assert Decimal(result["summary"]["actual"]) == Decimal("5330.50")  # DOMAIN.md's knee, read on the replica
    assert Decimal(result["summary"]["expected"]) == Decimal("4167.125")
    assert EpisodeCost.objects.count() == 1
    assert any(sql.startswith(("INSERT", "COPY")) and "COSTING_EPISODECOST" in sql for sql in sql_of(primary))
    assert any("COSTING_EPISODECOST" in sql for sql in sql_of(reports))
    assert not [sql for sql in sql_of(reports) if sql.startswith(WRITES)]


def _databases_with(env: dict[str, str]) -> dict:
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'aliases': sorted(s.DATABASES), 'routers': getattr(s, 'DATABASE_ROUTERS', []), "
        "'mirror': s.DATABASES.get('reports', {}).get('TEST', {}).get('MIRROR')}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"REPORTS_DATABASE_URL", "DATABASE_URL"}}
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


def test_it_configures_the_replica_only_when_reports_database_url_is_set(tmp_path):
    without = _databases_with({})
    with_replica = _databases_with({"REPORTS_DATABASE_URL": f"sqlite:///{tmp_path / 'replica.sqlite3'}"})

    assert without == {"aliases": ["default"], "routers": [], "mirror": None}
    assert with_replica["aliases"] == ["default", "reports"]
    assert with_replica["routers"] == ["config.routers.ReportsReplicaRouter"]
    # Test runs use the primary's test database for the alias rather than creating another.
    assert with_replica["mirror"] == "default"
