"""The benchmark's hand-written SQL computes the reports' own figures (bench/sqllimit.py).

``bench/reports.py`` times the reports against this SQL as the database's limit, and says
whether the figures agree. When the costing rules change and the SQL does not, the benchmark
compares against a different calculation: this test catches that drift on a small generated
trust instead of in a benchmark run an hour long.
"""

import io
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import OrgUnit
from costing.reports import ReportParameters, Scope, cost_report, variance_report
from pathways.models import Pathway
from tests.conftest import require
from variances.models import Episode

sys.path.insert(0, "bench")
import sqllimit  # noqa: E402
from support import UNTIL  # noqa: E402

pytestmark = pytest.mark.django_db


def test_the_benchmark_sql_gives_the_reports_figures():
    require(connection.vendor == "postgresql", "the benchmark's SQL is PostgreSQL's (GROUPING SETS, AT TIME ZONE)")
    call_command("generate_demo", episodes=400, seed=3, until=UNTIL, years=2, batch_events=5000, stdout=io.StringIO())
    root = OrgUnit.objects.get(parent__isnull=True)
    params = ReportParameters(org_unit=root.code, date_from=UNTIL - timedelta(days=2 * 366), date_to=UNTIL)
    scope = Scope(params)
    codes = dict(Pathway.objects.values_list("pk", "code"))

    variance = sqllimit.report_variance_headline(variance_report(params))
    cost = sqllimit.report_cost_headline(cost_report(params))

    assert (
        sqllimit.differences(
            variance, sqllimit.variance_headline(sqllimit.variance_figures(scope), pathway_codes=codes)
        )
        == []
    )
    assert sqllimit.differences(cost, sqllimit.cost_headline(sqllimit.cost_figures(scope), pathway_codes=codes)) == []
    # Not an empty comparison: the generated trust has closed episodes with costs and price variance.
    closed = Episode.objects.exclude(status="active").count()
    assert cost["summary"][0] == closed > 100
    assert cost["summary"][3] != 0  # price variance: dearer items were recorded
