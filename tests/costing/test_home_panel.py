"""The home page's figures panel points at the report the person's dashboard opens on."""

from datetime import timedelta

import pytest
from django.utils import timezone

from costing.models import ReportRun
from tests.conftest import login

pytestmark = pytest.mark.django_db


def finished(unit, kind, *, ago: timedelta) -> ReportRun:
    return ReportRun.objects.create(
        kind=kind,
        org_unit=unit,
        parameters_key=f"{unit.code}-{kind}-{ago}",
        status=ReportRun.Status.SUCCEEDED,
        finished_at=timezone.now() - ago,
        result={},
    )


def test_a_trust_wide_reader_is_told_about_the_trusts_report_not_the_last_divisions(client, org, fred):
    finished(org["RCH"], ReportRun.Kind.COST, ago=timedelta(hours=2))
    finished(org["SURG"], ReportRun.Kind.VARIANCE, ago=timedelta(minutes=5))  # later, but Surgery's
    login(client, fred)

    page = client.get("/").content.decode()

    assert "The latest cost report for Riverside Trust was computed 2\xa0hours ago." in page


def test_without_a_report_on_their_own_unit_they_are_told_about_the_latest_they_may_read(client, org, fred):
    finished(org["SURG"], ReportRun.Kind.VARIANCE, ago=timedelta(seconds=20))
    finished(org["MED"], ReportRun.Kind.COST, ago=timedelta(hours=3))
    login(client, fred)

    page = client.get("/").content.decode()

    assert "The latest variance report for Surgery was computed 20\xa0seconds ago." in page
    assert "0 minutes ago" not in page
