"""An episode is costed with the rates in force on its date (DOMAIN.md section 4): expected and actual alike.

A tariff change between the start and a later event or night is no price paid for this
patient: it makes no price variance, and so nothing a delay could be blamed for.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from costing.engine import Component, cost_episode
from costing.rates import cost_rate_set
from tests.costing.factories import at, knee_episode, record_knee_actuals
from tests.pathways.tkr import build_tkr
from variances import services

pytestmark = pytest.mark.django_db


def new_year_rates(tkr):
    """From 1 April 2026 (FY 2026/27): a bed-day 200 (was 180), physiotherapy 0.70/min (was 0.625)."""
    for code, rate in (("BED-DAY", "200"), ("PHYSIOTHERAPIST", "0.70")):
        cost_rate_set(resource=tkr[code], financial_year=2026, rate=Decimal(rate), source="FY 2026/27 tariff")


def test_a_tariff_change_during_the_stay_changes_nothing_of_an_episode_started_before_it(org, alice):
    tkr = build_tkr(org["ORTHO"], financial_year=2025)
    new_year_rates(tkr)
    # The knee example, started on 30 March 2026: nights of 30 and 31 March and 1-3 April,
    # physiotherapy on 31 March, 1 and 2 April.
    with time_machine.travel(at(2026, 5, 1), tick=False):
        episode = record_knee_actuals(tkr, unit=org["ORTHO-W7"], clinician=alice, started_at=at(2026, 3, 30, 8))

    costing = cost_episode(episode)

    # Exactly DOMAIN.md's figures. Before: A 5,397.25, with 60.00 of bed-days and 6.75 of
    # physiotherapy priced at April's rates counted as price variance.
    assert (costing.expected, costing.actual) == (Decimal("4167.125"), Decimal("5330.50"))
    assert costing.price_variance == Decimal("200.00")  # the dearer implant only
    assert costing.los_variance == Decimal("696.00")
    causes = costing.by_cause()
    assert (causes["system"], causes["clinician"], causes["repeat"], causes["unexplained"]) == (
        Decimal("896.00"),
        Decimal("239.25"),
        Decimal("28.125"),
        0,
    )


def test_an_episode_started_after_the_change_is_costed_at_the_new_rates_both_sides(org, alice):
    tkr = build_tkr(org["ORTHO"], financial_year=2025)
    new_year_rates(tkr)
    with time_machine.travel(at(2026, 5, 1), tick=False):
        episode = record_knee_actuals(tkr, unit=org["ORTHO-W7"], clinician=alice, started_at=at(2026, 4, 2, 8))

    costing = cost_episode(episode)

    # 3 expected bed-days at 200 (+60.00), 2 sessions of 45 minutes at 0.70 (+6.75).
    assert costing.expected == Decimal("4233.875")
    assert costing.price_variance == Decimal("200.00")
    stay = next(line for line in costing.lines if line.resource == tkr["BED-DAY"])
    assert (stay.standard_rate, stay.los_variance) == (Decimal("200"), Decimal("400.00"))


def test_a_delay_explains_the_nights_of_a_stay_not_a_dearer_day(org, alice):
    tkr, episode = knee_episode(org, alice)
    # A side room on the second day, at 250 instead of a bed-day's 180.
    services.event_record(
        episode=episode,
        step=tkr["WARD-STAY"],
        occurred_at=episode.started_at + timedelta(days=1, hours=2),
        source="manual",
        quantities=[{"resource": "BED-DAY", "quantity": "1", "unit_cost": "250"}],
        actor=alice,
    )
    episode.refresh_from_db()
    delay = episode.variances.get(variance_type="delay")  # on the stay, system-caused

    costing = cost_episode(episode)
    bed = next(line for line in costing.lines if line.resource == tkr["BED-DAY"])

    assert (bed.price_variance, bed.los_variance) == (Decimal("70.00"), Decimal("360.00"))
    assert bed.variance == delay
    parts = {part.component: (part.cause, part.variance) for part in costing.decomposition() if part.line is bed}
    assert parts == {Component.LOS: ("system", delay), Component.PRICE: ("unexplained", None)}
    causes = costing.by_cause()
    # Before: system 966.00, the side room's 70.00 counted as the awaited care package's.
    assert (causes["system"], causes["unexplained"]) == (Decimal("896.00"), Decimal("70.00"))
    assert sum(causes.values()) == costing.total_variance

    # The report's tables by type and by reason split the same way as its table by cause.
    from costing.reports import ReportParameters, cost_report

    day = timezone.localdate(episode.started_at)
    params = {"org_unit": episode.org_unit.code, "date_from": str(day), "date_to": str(day), "pathways": []}
    tables = cost_report(ReportParameters.from_dict(params))["tables"]
    by_type = {row["key"]: Decimal(row["amount"]) for row in tables["by_type"]["rows"]}
    by_reason = {row["key"]: Decimal(row["amount"]) for row in tables["by_reason"]["rows"]}
    per_type = {}
    for part in costing.decomposition():  # what each record explains, part by part (the engine's rule)
        if (record := part.variance) is not None:
            per_type[record.variance_type] = per_type.get(record.variance_type, 0) + part.amount
    assert by_type == per_type
    assert by_type["delay"] == by_reason[delay.reason.code]  # the side room's 70.00 is not the delay's
