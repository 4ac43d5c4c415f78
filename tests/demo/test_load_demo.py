"""`manage.py load_demo` creates the demo trust and logins, and a second run changes nothing."""

from io import StringIO

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Membership, OrgUnit, User
from accounts.permissions import primary_role
from costing.models import ReportRun
from pathways.models import PathwayVersion
from variances.models import Episode

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Rows that record *when* something ran, not what the demo contains.
RUN_LOGS = {"axes.accesslog", "axes.accessattempt", "axes.accessfailurelog", "sessions.session"}


def row_counts() -> dict[str, int]:
    return {
        model._meta.label_lower: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.label_lower not in RUN_LOGS
    }


def load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_it_is_idempotent_and_keeps_a_password_someone_changed():
    load_demo()
    clinician = User.objects.get(username="clinician")
    clinician.set_password("changed-by-the-user-42")
    clinician.save()
    first = row_counts()

    load_demo()

    assert row_counts() == first
    clinician.refresh_from_db()
    assert clinician.check_password("changed-by-the-user-42")


def test_it_creates_the_trust_and_one_login_per_role_and_prints_them():
    output = load_demo()

    expected = {
        "clinician": "clinician",
        "lead": "clinical_lead",
        "manager": "manager",
        "finance": "finance",
        "admin": "admin",
    }
    for username, role in expected.items():
        user = User.objects.get(username=username)
        assert primary_role(user) == role
        assert user.check_password(settings.DEMO_PASSWORD)
        assert f"  {username:<13} {Membership.Role(role).label}" in output
    assert f"password for all: {settings.DEMO_PASSWORD}" in output
    ortho = OrgUnit.objects.get(code="ORTHO")
    assert ortho.path == "RCH/SURG/ORTHO/"
    assert ortho.parent.kind == OrgUnit.Kind.DIVISION
    assert OrgUnit.objects.get(code="RCH").kind == OrgUnit.Kind.TRUST
    assert OrgUnit.objects.count() >= 10


def test_every_demo_episode_follows_a_version_already_in_effect_when_it_started():
    load_demo()

    episodes = Episode.objects.select_related("version__pathway")
    assert episodes.count() > 1000
    too_early = [
        (e.patient_ref, e.version.pathway.code, e.version.number, e.started_at.date(), e.version.effective_from)
        for e in episodes
        if e.version.effective_from is None or timezone.localdate(e.started_at) < e.version.effective_from
    ]
    assert too_early == []
    hip = {v.number: v for v in PathwayVersion.objects.filter(pathway__code="HIP-FRACTURE")}
    assert hip[1].effective_from < hip[2].effective_from < timezone.localdate()
    assert Episode.objects.filter(version=hip[1]).exists() and Episode.objects.filter(version=hip[2]).exists()


def test_the_dashboards_open_with_figures_for_every_unit_with_people(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # runs are queued once load_demo's work is committed
        output = load_demo()

    runs = ReportRun.objects.all()
    units_with_people = set(Membership.objects.values_list("org_unit__code", flat=True))
    assert {run.org_unit.code for run in runs} == units_with_people
    assert {run.kind for run in runs} == set(ReportRun.Kind.values)
    assert all(run.status == ReportRun.Status.SUCCEEDED for run in runs), [(r.pk, r.status, r.error) for r in runs]
    # Twelve months of the 200 generated orthopaedic episodes, every one of them costed.
    ortho_variance = runs.get(org_unit__code="ORTHO", kind=ReportRun.Kind.VARIANCE).result["summary"]
    ortho_cost = runs.get(org_unit__code="ORTHO", kind=ReportRun.Kind.COST).result["summary"]
    assert ortho_variance["episodes"] >= 50
    assert ortho_cost["episodes"] == ortho_variance["episodes"] - ortho_variance["active"], (ortho_cost, ortho_variance)
    assert f"Requested {runs.count()} reports" in output
