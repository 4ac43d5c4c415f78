"""The DOMAIN.md period example: budget, flexible budget, volume split into quantity and mix."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from costing.engine import direction
from costing.models import Budget, ReportRun
from costing.period import PathwayPeriod, PeriodAnalysis, period_analysis
from costing.report_views import display_table
from costing.reports import ReportParameters, cost_report
from costing.summaries import episode_costs_refresh
from pathways.models import Resource
from tests.costing.factories import at, simple_pathway
from variances.models import Episode, EventQuantity, StepEvent


def test_it_reproduces_the_domain_md_period_example():
    analysis = PeriodAnalysis(
        financial_year=2025,
        pathways=[
            PathwayPeriod("TKR", "Knee", Decimal("4167"), budget_episodes=100, actual_episodes=130),
            PathwayPeriod("THR", "Hip", Decimal("4500"), budget_episodes=100, actual_episodes=90),
        ],
    )

    assert analysis.static_budget == Decimal("866700")
    assert analysis.flexible_budget == Decimal("946710")
    assert analysis.volume_variance == Decimal("80010")
    assert direction(analysis.volume_variance) == "U"
    assert analysis.budget_average_cost == Decimal("4333.5")
    assert analysis.quantity_variance == Decimal("86670")
    assert direction(analysis.quantity_variance) == "U"
    assert analysis.mix_variance == Decimal("-6660")
    assert direction(analysis.mix_variance) == "F"
    assert analysis.quantity_variance + analysis.mix_variance == analysis.volume_variance


def test_it_calls_all_volume_variance_quantity_when_nothing_was_budgeted():
    analysis = PeriodAnalysis(
        financial_year=2025, pathways=[PathwayPeriod("TKR", "Knee", Decimal("4167"), 0, actual_episodes=3)]
    )
    assert analysis.quantity_variance == Decimal("12501")
    assert analysis.mix_variance == 0


@pytest.mark.django_db
def test_it_computes_the_period_from_budgets_and_episode_costs(org):
    def pathway(code, rate):
        return simple_pathway(
            code,
            org["ORTHO"],
            resources={f"{code}-EPISODE": (Resource.Kind.CONSUMABLE, Resource.Unit.ITEM, False, rate)},
            steps=[("CARE", False, 1, [(f"{code}-EPISODE", 1, 1)])],
        )

    tkr, thr = pathway("TKR", "4167"), pathway("THR", "4500")
    Budget.objects.create(pathway=tkr["pathway"], financial_year=2025, episodes=100)
    Budget.objects.create(pathway=thr["pathway"], financial_year=2025, episodes=100)
    episodes = []
    for i, (p, n) in enumerate([(tkr, 130), (thr, 90)]):
        for k in range(n):
            started = at(2025, 5, 1) + timedelta(days=k)
            episodes.append(
                Episode(
                    patient_ref=f"PT-{i}{k:04d}",
                    version=p["version"],
                    org_unit=org["ORTHO"],
                    started_at=started,
                    ended_at=started + timedelta(days=1),
                    status=Episode.Status.COMPLETED,
                )
            )
    # An episode of the year before and an active one: neither is in the year's actuals.
    episodes.append(
        Episode(patient_ref="PT-OLD1", version=tkr["version"], org_unit=org["ORTHO"], started_at=at(2025, 3, 1),
                ended_at=at(2025, 3, 2), status=Episode.Status.COMPLETED)
    )  # fmt: skip
    episodes.append(
        Episode(patient_ref="PT-ACT1", version=tkr["version"], org_unit=org["ORTHO"], started_at=at(2025, 6, 1))
    )
    Episode.objects.bulk_create(episodes)
    saved = {e.patient_ref: e for e in Episode.objects.all()}
    events = []
    for ref, episode in saved.items():
        if ref.startswith("PT-1") and ref >= "PT-10085":
            continue  # 5 THR episodes where the care step was not done: efficiency 22,500 F
        events.append(StepEvent(episode=episode, step=episode.version.steps.get(), occurred_at=episode.started_at))
    StepEvent.objects.bulk_create(events)
    dearer = [e for e in events if e.episode.patient_ref < "PT-00010"]  # 10 TKR implants 100 dearer: 1,000 U
    EventQuantity.objects.bulk_create(
        [EventQuantity(event=e, resource=tkr["TKR-EPISODE"], quantity=1, unit_cost=Decimal("4267")) for e in dearer]
    )
    episode_costs_refresh()

    analysis = period_analysis(financial_year=2025)

    assert [(p.code, p.budget_episodes, p.actual_episodes) for p in analysis.pathways] == [
        ("THR", 100, 90),
        ("TKR", 100, 130),
    ]
    assert analysis.static_budget == Decimal("866700")
    assert analysis.flexible_budget == Decimal("946710")
    assert analysis.quantity_variance == Decimal("86670")
    assert analysis.mix_variance == Decimal("-6660")
    assert analysis.rate_variance == Decimal("1000")
    assert analysis.efficiency_variance == Decimal("-22500")
    assert analysis.standard_revision == 0
    assert analysis.actual_cost == Decimal("946710") + 1000 - 22500
    assert analysis.flexible_budget_variance == analysis.rate_variance + analysis.efficiency_variance
    keys = [key for key, _, _ in analysis.lines()]
    assert keys == ["static_budget", "quantity", "mix", "flexible_budget", "rate", "efficiency", "actual"]

    # The cost report for the whole year shows it as finance reads it: budgets and actual in one
    # column, each variance in another, U or F like every other variance (no minus sign beside an F).
    result = cost_report(ReportParameters(org_unit="ORTHO", date_from=date(2025, 4, 1), date_to=date(2026, 3, 31)))
    shown = display_table(ReportRun(pk=1, kind=ReportRun.Kind.COST), "period", result["tables"]["period"])
    assert [[cell["text"] for cell in row["cells"]] for row in shown.rows] == [
        ["Static budget (B)", "866,700.00", "—"],
        ["Volume: quantity", "—", "86,670.00 U"],
        ["Volume: case mix", "—", "6,660.00 F"],
        ["Flexible budget (F)", "946,710.00", "—"],
        ["Rate (price) variance", "—", "1,000.00 U"],
        ["Efficiency (usage and length of stay) variance", "—", "22,500.00 F"],
        ["Actual cost (A)", "925,210.00", "—"],
    ]
    assert shown.download_label == "budget against actual, FY 2025/26"
    assert result["tables"]["period"]["rows"][2]["variance"] == "-6660"  # exports keep the sign
