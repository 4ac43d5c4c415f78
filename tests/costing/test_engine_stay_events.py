"""A ward stay's events: each day's recorded use replaces that day's plan once, never below zero.

The knee pathway's stay plans, per day, a bed-day (180) and 240 ward-nurse minutes (0.70/min):
168.00 of nursing a day, 504.00 over the 3 expected days.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from costing.engine import cost_episode
from tests.costing.factories import at
from tests.pathways.tkr import build_tkr
from variances import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def tkr(org):
    return build_tkr(org["ORTHO"], financial_year=2025)


def stay_episode(tkr, org, clinician, *, nights: int, nursing: list[tuple[int, int, str]]):
    """A knee episode from 2 June 2025 08:00, every step but the stay done once as planned, ``nights``
    nights long, with ward-nurse minutes recorded on the stay: ``(day offset, hour, minutes)``."""
    start = at(2025, 6, 2, 8)
    with time_machine.travel(at(2025, 7, 1), tick=False):
        episode = services.episode_start(
            pathway_version=tkr["version"],
            patient_ref="PT-STAY",
            org_unit=org["ORTHO-W7"],
            responsible_clinician=clinician,
            started_at=start,
            actor=clinician,
        )
        for code in ("PREOP", "SURGERY", "PHYSIO"):
            services.event_record(
                episode=episode,
                step=tkr[code],
                occurred_at=start + timedelta(hours=1),
                source="manual",
                actor=clinician,
            )
        for day, hour, minutes in nursing:
            services.event_record(
                episode=episode,
                step=tkr["WARD-STAY"],
                occurred_at=at(2025, 6, 2 + day, hour),
                source="manual",
                quantities=[{"resource": "WARD-NURSE", "quantity": minutes}],
                actor=clinician,
            )
        return services.episode_close(
            episode=episode, ended_at=start + timedelta(days=nights, hours=3), actor=clinician
        )


def nurse_line(costing, tkr):
    return next(line for line in costing.lines if line.step == tkr["WARD-STAY"] and line.resource == tkr["WARD-NURSE"])


def test_nursing_on_a_same_day_discharge_is_use_beyond_the_plan_not_a_negative_day(tkr, org, alice):
    costing = cost_episode(stay_episode(tkr, org, alice, nights=0, nursing=[(0, 10, "100")]))
    nurse = nurse_line(costing, tkr)

    assert costing.los_days == 0
    # Was -140 minutes costing -98.00: the event took away a planned day the stay never had.
    assert (nurse.actual_quantity, nurse.actual_cost) == (Decimal("100"), Decimal("70.00"))
    assert nurse.usage_variance == Decimal("70.00")  # 100 minutes beyond a plan of none
    assert nurse.los_variance == Decimal("-504.00")  # 3 planned days not stayed
    assert nurse.price_variance == 0
    # Pre-op 49.125 + surgery 3,017.75 + one physio session 28.125 + the nursing 70.00; no bed-day.
    assert costing.actual == Decimal("3165.00")
    assert costing.total_variance == Decimal("-1002.125")


def test_two_events_on_one_day_replace_that_day_once_by_their_sum(tkr, org, alice):
    costing = cost_episode(stay_episode(tkr, org, alice, nights=3, nursing=[(1, 10, "120"), (1, 14, "120")]))
    nurse = nurse_line(costing, tkr)

    # Was 480 minutes (336.00): each event took a whole planned day away.
    assert (nurse.actual_quantity, nurse.actual_cost) == (Decimal("720"), Decimal("504.00"))
    assert nurse.total_variance == 0  # 120 + 120 is the day's planned 240


def test_a_busier_day_adds_only_its_minutes_beyond_the_plan(tkr, org, alice):
    costing = cost_episode(stay_episode(tkr, org, alice, nights=3, nursing=[(1, 10, "180"), (1, 14, "120")]))
    nurse = nurse_line(costing, tkr)

    assert (nurse.actual_quantity, nurse.actual_cost) == (Decimal("780"), Decimal("546.00"))
    assert (nurse.usage_variance, nurse.los_variance) == (Decimal("42.00"), 0)  # 60 minutes x 0.70


def test_a_quieter_day_uses_less_but_the_other_days_keep_their_plan(tkr, org, alice):
    costing = cost_episode(stay_episode(tkr, org, alice, nights=3, nursing=[(0, 20, "60")]))
    nurse = nurse_line(costing, tkr)

    assert (nurse.actual_quantity, nurse.actual_cost) == (Decimal("540"), Decimal("378.00"))
    assert nurse.usage_variance == Decimal("-126.00")  # 180 minutes fewer on day one


def test_nursing_on_the_day_of_leaving_is_use_beyond_the_plan(tkr, org, alice):
    costing = cost_episode(stay_episode(tkr, org, alice, nights=3, nursing=[(3, 9, "30")]))
    nurse = nurse_line(costing, tkr)

    # 3 planned days of 240 minutes, and 30 on the morning of discharge (a day not in the stay).
    assert (nurse.actual_quantity, nurse.actual_cost) == (Decimal("750"), Decimal("525.00"))
    assert nurse.usage_variance == Decimal("21.00")
