"""Pages and API endpoints cost the same number of queries however much data there is.

The data comes from ``generate_demo``'s generator (realistic episodes, events,
variances with their history, report runs). Each list is read with a small
trust (60 episodes) and again after 600 more: the query counts must not move.
Detail pages are read for episodes and variances of very different sizes: the
counts must be equal too. This pins bounded query counts (no N+1) for the pages
``bench/pages.py`` times at 500,000 episodes, and for the lists and endpoints
other tests do not already pin.
"""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import api_token_create
from costing.reports import ReportParameters
from costing.services import report_run_request
from costing.tasks import run_report
from demo import generate
from tests.conftest import login
from variances.models import Episode, Variance

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

UNTIL = date(2025, 6, 1)
NOW = datetime(2025, 6, 2, 9, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class Trust:
    """The demo trust, grown by generated episodes; its report runs recomputed after each growth."""

    def __init__(self):
        generate.prepare_demo()
        self.seed = 100
        self.runs: dict[tuple[str, str], int] = {}

    def grow(self, episodes: int) -> None:
        self.seed += 1
        generate.generate(episodes=episodes, seed=self.seed, until=UNTIL, years=1)
        for unit in ("ORTHO", "SURG", "RCH"):
            for kind in ("variance", "cost"):
                params = ReportParameters(org_unit=unit, date_from=UNTIL - timedelta(days=366), date_to=UNTIL)
                run, _joined = report_run_request(kind=kind, parameters=params, actor=None)
                assert run_report.apply(args=[run.pk]).get() == "succeeded"
                self.runs[(unit, kind)] = run.pk

    def user(self, username: str) -> User:
        return User.objects.get(username=username)


@pytest.fixture
def trust():
    return Trust()


def page_queries(client, user: User, url: str) -> int:
    login(client, user)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured)


def api_queries(user: User, url: str) -> int:
    _token, raw = api_token_create(user=user, name="query counts")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return len(captured)


def list_urls() -> list[tuple[str, str, str]]:
    """(kind, persona, url) of every list whose length grows with the trust.

    Report runs are named by unit and kind (``{ORTHO-variance}``): each growth computes new ones.
    """
    return [
        ("page", "clinician", "/"),
        ("page", "clinician", "/variances/"),
        ("page", "clinician", "/variances/episodes/"),
        ("page", "lead", "/variances/review/"),
        ("page", "clinician", "/costing/dashboard/"),
        ("page", "lead", "/costing/dashboard/?lens=cost"),
        ("page", "manager", "/costing/dashboard/"),
        ("page", "finance", "/costing/dashboard/?unit=RCH"),
        ("page", "clinician", "/costing/reports/"),
        ("page", "clinician", "/costing/reports/{ORTHO-variance}/"),
        ("page", "manager", "/costing/reports/{SURG-cost}/"),
        ("page", "clinician", "/costing/reports/{ORTHO-variance}/pathways/HIP-FRACTURE/"),
        ("page", "clinician", "/costing/reports/{ORTHO-variance}/pathways/HIP-FRACTURE/steps/SURGERY/"),
        ("page", "lead", "/costing/reports/{ORTHO-cost}/pathways/HIP-FRACTURE/steps/WARD-STAY/"),
        ("page", "manager", "/costing/reports/{SURG-variance}/pathways/TKR/steps/SURGERY/"),
        ("api", "clinician", "/api/v1/pathways/"),
        ("api", "clinician", "/api/v1/episodes/?pathway=HIP-FRACTURE"),
        ("api", "lead", "/api/v1/variances/?status=documented"),
        ("api", "clinician", "/api/v1/reason-codes/"),
        ("api", "manager", "/api/v1/reports/{SURG-cost}/"),
        ("api", "clinician", "/api/v1/reports/{ORTHO-variance}/"),
        # Not a list: it must read no data at all (exact counts in tests/api/test_fhir_metadata.py).
        ("api", "clinician", "/api/v1/fhir/metadata"),
    ]


def counts(client, trust: Trust) -> dict[str, int]:
    runs = {f"{unit}-{kind}": pk for (unit, kind), pk in trust.runs.items()}
    out = {}
    for kind, persona, template in list_urls():
        user = trust.user(persona)
        url = template.format(**runs)
        out[f"{persona} {template}"] = page_queries(client, user, url) if kind == "page" else api_queries(user, url)
    return out


def test_lists_and_dashboards_make_the_same_queries_for_ten_times_the_data(client, trust):
    trust.grow(60)
    small = counts(client, trust)
    episodes_before = Episode.objects.count()

    trust.grow(600)
    large = counts(client, trust)

    assert Episode.objects.count() == episodes_before + 600
    assert large == small


def _episodes_of_every_size():
    """Completed hip fracture episodes with variances: the fewest events, the most, and between."""
    episodes = list(
        Episode.objects.filter(version__pathway__code="HIP-FRACTURE", status="completed", variances__isnull=False)
        .annotate(n_events=Count("events", distinct=True), n_variances=Count("variances", distinct=True))
        .order_by("n_events", "n_variances", "pk")
    )
    assert len(episodes) >= 3
    chosen = [episodes[0], episodes[len(episodes) // 2], episodes[-1]]
    assert chosen[-1].n_events >= 2 * chosen[0].n_events
    return chosen


def test_the_episode_page_and_its_api_cost_the_same_queries_whatever_the_episodes_size(client, trust):
    trust.grow(150)
    clinician = trust.user("clinician")
    lead = trust.user("lead")
    sizes = _episodes_of_every_size()

    pages = {page_queries(client, clinician, f"/variances/episodes/{e.pk}/") for e in sizes}
    costs = {page_queries(client, clinician, f"/costing/episodes/{e.pk}/cost/") for e in sizes}
    details = {api_queries(clinician, f"/api/v1/episodes/{e.pk}/") for e in sizes}
    events = {api_queries(clinician, f"/api/v1/episodes/{e.pk}/events/") for e in sizes}
    care_plans = {api_queries(lead, f"/api/v1/fhir/CarePlan/{e.pk}") for e in sizes}

    assert len(pages) == 1, pages
    assert len(costs) == 1, costs
    assert len(details) == 1, details
    assert len(events) == 1, events
    assert len(care_plans) == 1, care_plans


def test_a_variances_history_costs_the_same_queries_however_many_revisions(client, trust):
    trust.grow(150)
    clinician = trust.user("clinician")
    by_revisions = list(
        # Alike but for their histories: documented, on a step, about no particular resource (a resource
        # adds one batched look-up for its code).
        Variance.objects.filter(
            episode__version__pathway__code="HIP-FRACTURE",
            reason__isnull=False,
            step__isnull=False,
            resource__isnull=True,
        ).order_by("revision", "pk")
    )
    fewest, most = by_revisions[0], by_revisions[-1]
    assert most.revision >= fewest.revision + 2

    pages = {page_queries(client, clinician, f"/variances/{v.pk}/") for v in (fewest, most)}
    costs = {page_queries(client, clinician, f"/costing/variances/{v.pk}/cost/") for v in (fewest, most)}
    histories = {api_queries(clinician, f"/api/v1/variances/{v.pk}/history/") for v in (fewest, most)}

    assert len(pages) == 1, pages
    assert len(costs) == 1, costs
    assert len(histories) == 1, histories
