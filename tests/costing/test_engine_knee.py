"""The DOMAIN.md knee replacement, costed and its variance decomposed exactly."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from costing.engine import RULES_VERSION, Component, CostLine, EpisodeCosting, Nature, VarianceLine, cost_episode
from costing.models import EpisodeCost, EpisodeCostLine
from costing.money import display
from costing.standard import expected_episode_cost
from costing.summaries import episode_costs_refresh
from pathways.models import Resource, Step
from tests.costing.factories import knee_episode, record_variance
from variances import services
from variances.models import Variance

pytestmark = pytest.mark.django_db


@pytest.fixture
def knee(org, alice):
    return knee_episode(org, alice)


def _sum(lines, **match):
    total = Decimal("0")
    for v in lines:
        if all(getattr(v, k) == value for k, value in match.items()):
            total += v.amount
    return total


def test_it_costs_the_knee_episode_exactly_as_domain_md(knee):
    tkr, episode = knee
    costing = cost_episode(episode)

    assert costing.expected == Decimal("4167.125")
    assert costing.expected == expected_episode_cost(tkr["version"], on=episode.started_at.date())
    assert costing.actual == Decimal("5330.50")
    assert costing.total_variance == Decimal("1163.375")
    assert display(costing.expected) == "4,167.13"
    assert display(costing.actual) == "5,330.50"
    assert display(costing.total_variance) == "1,163.38"
    assert costing.los_days == 5
    assert costing.expected_los_days == 3


def test_it_decomposes_the_knee_variance_into_price_minutes_stay_and_physio(knee):
    tkr, episode = knee
    costing = cost_episode(episode)
    lines = costing.decomposition()

    implant_price = _sum(lines, component=Component.PRICE)
    surgery_minutes = sum(
        (v.amount for v in lines if v.component == Component.USAGE and v.line.step == tkr["SURGERY"]), Decimal("0")
    )
    stay = _sum(lines, component=Component.LOS)
    physio = sum(
        (v.amount for v in lines if v.component == Component.USAGE and v.line.step == tkr["PHYSIO"]), Decimal("0")
    )

    assert implant_price == Decimal("200.00")
    assert surgery_minutes == Decimal("239.25")
    assert stay == Decimal("696.00")
    assert display(physio) == "28.13"
    assert implant_price + surgery_minutes + stay + physio == costing.total_variance
    assert {v.direction for v in lines} == {"U"}
    assert costing.price_variance + costing.usage_variance + costing.los_variance == costing.total_variance


def test_it_links_each_line_to_the_variance_that_explains_it(knee):
    tkr, episode = knee
    costing = cost_episode(episode)
    substitution = episode.variances.get(variance_type="substitution")
    override = episode.variances.get(variance_type="override")
    delay = episode.variances.get(variance_type="delay")

    by_resource = {(line.step.code, line.resource.code): line for line in costing.lines}
    assert by_resource[("SURGERY", "IMPLANT")].variance == substitution  # same step, same resource
    assert by_resource[("SURGERY", "THEATRE")].variance == override  # same step, no particular resource
    assert by_resource[("SURGERY", "CONSULTANT")].variance == override
    assert by_resource[("WARD-STAY", "BED-DAY")].variance == delay
    assert by_resource[("PHYSIO", "PHYSIOTHERAPIST")].variance is None  # an extra session nobody explained
    assert by_resource[("PHYSIO", "PHYSIOTHERAPIST")].cause == "repeat"  # a repeat: no one was asked why
    assert by_resource[("PREOP", "CONSULTANT")].variance is None  # went to plan: nothing to explain

    causes = costing.by_cause()
    assert causes["system"] == Decimal("896.00")  # implant 200 + stay 696
    assert causes["clinician"] == Decimal("239.25")
    assert causes["repeat"] == Decimal("28.125")
    assert causes["unexplained"] == 0
    assert causes["patient"] == causes["community"] == 0


def test_a_record_explains_only_what_its_type_and_resource_can_explain(knee):
    """System causes are the organisation's: a record must not take a cost it did not cause."""
    tkr, episode = knee
    clinician = episode.responsible_clinician
    late_physio = record_variance(
        episode,
        tkr["PHYSIO"],
        Variance.Type.DELAY,
        cause=Variance.Cause.SYSTEM,
        reason_code="service-not-available",
        rationale="Physiotherapist off sick on day 1.",
        at=episode.started_at + timedelta(days=1),
        actor=clinician,
    )
    override = episode.variances.get(variance_type="override")
    services.variance_withdraw(variance=override, reason="Recorded twice", actor=clinician)

    lines = {(line.step.code, line.resource.code): line for line in cost_episode(episode).lines}

    # A late session changes no quantity: the third session stays unexplained, not "system".
    assert lines[("PHYSIO", "PHYSIOTHERAPIST")].variance is None
    # The implant's substitution explains the implant, not the longer operation.
    assert lines[("SURGERY", "IMPLANT")].variance == episode.variances.get(variance_type="substitution")
    assert lines[("SURGERY", "THEATRE")].variance is None
    # A delay on a per-day step explains the stay it lengthened.
    assert lines[("WARD-STAY", "BED-DAY")].variance == episode.variances.get(
        variance_type="delay", step=tkr["WARD-STAY"]
    )
    assert late_physio.pk not in {line.variance.pk for line in lines.values() if line.variance}


def test_an_omission_explains_only_a_line_used_less_than_planned(knee):
    tkr, episode = knee
    record_variance(
        episode,
        tkr["PHYSIO"],
        Variance.Type.OMISSION,
        cause=Variance.Cause.PATIENT,
        reason_code="patient-contraindication",
        rationale="Recorded against the wrong step.",
        at=episode.started_at + timedelta(days=1),
        actor=episode.responsible_clinician,
    )

    physio = next(line for line in cost_episode(episode).lines if line.step == tkr["PHYSIO"])

    assert physio.actual_quantity > physio.standard_quantity
    assert physio.variance is None


def test_a_repeat_is_counted_against_the_planned_count_whole_and_at_least_once(knee):
    tkr, episode = knee
    lines = {line.step.code: line for line in cost_episode(episode).lines}

    assert (tkr["PHYSIO"].planned_occurrences, lines["PHYSIO"].occurrences, lines["PHYSIO"].repeated) == (2, 3, True)
    assert (lines["SURGERY"].occurrences, lines["SURGERY"].repeated) == (1, False)
    assert not lines["WARD-STAY"].repeated  # a stay is per day, never a repeat
    conditional = Step(expected_count=Decimal("0.3"))
    assert conditional.planned_occurrences == 1  # done once is as planned


def test_extra_nights_no_record_on_the_stay_explains_fall_back_to_a_documented_delay_system_first(knee):
    tkr, episode = knee
    clinician = episode.responsible_clinician
    stay_delay = episode.variances.get(variance_type="delay", step=tkr["WARD-STAY"])
    services.variance_withdraw(variance=stay_delay, reason="Recorded on the wrong step", actor=clinician)
    late_preop = record_variance(
        episode,
        tkr["PREOP"],
        Variance.Type.DELAY,
        cause=Variance.Cause.CLINICIAN,
        reason_code="mitigate-risk-negative-outcome",
        rationale="Assessment repeated before theatre.",
        at=episode.started_at + timedelta(hours=1),
        actor=clinician,
    )
    late_surgery = record_variance(
        episode,
        tkr["SURGERY"],
        Variance.Type.DELAY,
        cause=Variance.Cause.SYSTEM,
        reason_code="service-not-available",
        rationale="Theatre list cancelled: operated the next day.",
        at=episode.started_at + timedelta(hours=4),
        actor=clinician,
    )

    costing = cost_episode(episode)
    lines = {(line.step.code, line.resource.code): line for line in costing.lines}

    # 2 extra nights: the system-caused delay takes them, though the clinician's came first.
    assert lines[("WARD-STAY", "BED-DAY")].variance == late_surgery
    assert lines[("WARD-STAY", "WARD-NURSE")].variance == late_surgery
    assert lines[("SURGERY", "THEATRE")].variance != late_surgery  # the late operation's minutes are the override's
    assert costing.by_cause()["system"] == Decimal("896.00")  # implant 200 + stay 696, as before

    late_surgery.refresh_from_db()
    services.variance_withdraw(variance=late_surgery, reason="Recorded twice", actor=clinician)
    lines = {(line.step.code, line.resource.code): line for line in cost_episode(episode).lines}
    assert lines[("WARD-STAY", "BED-DAY")].variance == late_preop  # the only documented delay left


def test_the_labels_follow_the_direction_and_the_plan():
    consultant = Resource(code="C", name="Consultant", salaried=True)
    surgery = Step(code="S", expected_count=Decimal("1"))
    freed = VarianceLine(
        component=Component.USAGE,
        nature=Nature.CAPACITY,
        amount=Decimal("-56.25"),
        line=CostLine(step=surgery, resource=consultant),
    )
    assert freed.nature_label == "capacity freed"
    assert (
        VarianceLine(
            component=Component.USAGE,
            nature=Nature.CAPACITY,
            amount=Decimal("56.25"),
            line=CostLine(step=surgery, resource=consultant),
        ).nature_label
        == "capacity consumed"
    )
    # A second operation that cost less than planned (shorter minutes) is no costly repeat.
    assert not CostLine(step=surgery, resource=consultant, occurrences=2, usage_variance=Decimal("-5")).repeated
    assert CostLine(step=surgery, resource=consultant, occurrences=2, usage_variance=Decimal("5")).repeated
    admission = Step(code="A", expected_count=Decimal("0.1"))
    assert CostLine(step=admission, resource=consultant).conditional
    assert not CostLine(step=surgery, resource=consultant).conditional


def test_an_activity_recorded_without_resources_is_named_as_not_costed(knee):
    tkr, episode = knee
    services.event_record(
        episode=episode,
        activity="Return to theatre",
        occurred_at=episode.started_at + timedelta(days=2),
        source="manual",
        actor=episode.responsible_clinician,
    )
    episode.refresh_from_db()

    costing = cost_episode(episode)

    assert costing.uncosted == ["Return to theatre"]
    assert costing.actual == Decimal("5330.50")  # unchanged: nothing to cost it with


def test_adverse_lines_come_first_then_favourable_each_largest_first():
    room = Resource(code="R", name="Room", salaried=False)
    lines = [CostLine(step=None, resource=room, usage_variance=Decimal(amount)) for amount in ("-10", "5", "-20", "30")]

    amounts = [part.amount for part in EpisodeCosting(episode=None, lines=lines).decomposition()]

    assert amounts == [Decimal("30"), Decimal("5"), Decimal("-20"), Decimal("-10")]


def test_a_summary_computed_under_earlier_costing_rules_is_stale_and_recomputed(knee):
    _tkr, episode = knee
    assert episode_costs_refresh() == 1
    assert EpisodeCost.objects.get(episode=episode).rules_version == RULES_VERSION
    assert episode_costs_refresh() == 0  # nothing changed: nothing to do

    EpisodeCost.objects.filter(episode=episode).update(rules_version=RULES_VERSION - 1, system_variance=0)

    assert episode_costs_refresh() == 1
    summary = EpisodeCost.objects.get(episode=episode)
    assert (summary.rules_version, summary.system_variance) == (RULES_VERSION, Decimal("896"))


def test_it_labels_price_as_cash_and_salaried_minutes_as_capacity_consumed(knee):
    tkr, episode = knee
    lines = cost_episode(episode).decomposition()

    implant = next(v for v in lines if v.line.resource == tkr["IMPLANT"])
    assert (implant.component, implant.nature, implant.nature_label) == ("price", "cash", "cash")
    consultant = next(v for v in lines if v.line.resource == tkr["CONSULTANT"])
    assert (consultant.nature, consultant.nature_label) == (Nature.CAPACITY, "capacity consumed")
    assert consultant.amount == Decimal("56.25")  # 30 extra minutes x 1.875
    theatre = next(v for v in lines if v.line.resource == tkr["THEATRE"])
    assert theatre.nature == Nature.CASH  # the room is not salaried staff
    bed = next(v for v in lines if v.line.resource == tkr["BED-DAY"])
    nurse_stay = next(v for v in lines if v.line.resource == tkr["WARD-NURSE"] and v.component == "los")
    assert (bed.amount, bed.nature) == (Decimal("360"), "cash")
    assert (nurse_stay.amount, nurse_stay.nature) == (Decimal("336"), "capacity")


def test_the_stored_summary_and_lines_hold_exactly_what_the_engine_computed(knee):
    """Reports read ``EpisodeCost``/``EpisodeCostLine`` (written with COPY on PostgreSQL): nothing may be lost there."""
    tkr, episode = knee
    transfusion = services.event_record(
        episode=episode,
        activity="Blood transfusion",
        occurred_at=episode.started_at + timedelta(days=2),
        source="manual",
        quantities=[{"resource": "WARD-NURSE", "quantity": "45"}],
        actor=episode.responsible_clinician,
    )
    episode.refresh_from_db()
    costing = cost_episode(episode)

    assert episode_costs_refresh() == 1
    summary = EpisodeCost.objects.get(episode=episode)
    assert (summary.pathway_id, summary.version_id, summary.org_unit_id) == (
        tkr["version"].pathway_id,
        tkr["version"].pk,
        episode.org_unit_id,
    )
    assert summary.responsible_clinician_id == episode.responsible_clinician_id
    assert (summary.started_on, summary.month, summary.ended_on) == (
        date(2025, 6, 2),
        date(2025, 6, 1),
        date(2025, 6, 7),
    )
    assert (summary.los_days, summary.expected_los_days) == (5, Decimal("3"))
    assert (summary.readmitted_30d, summary.complication, summary.status) == (False, False, "completed")
    assert summary.expected == Decimal("4167.125")
    assert summary.actual == costing.actual > Decimal("5330.50")  # the knee plus the transfusion's nursing time
    assert (summary.price_variance, summary.usage_variance, summary.los_variance, summary.capacity_variance) == (
        costing.price_variance,
        costing.usage_variance,
        costing.los_variance,
        costing.capacity_variance,
    )
    by_cause = costing.by_cause()
    assert summary.system_variance == by_cause["system"] == Decimal("896.00")
    assert summary.clinician_variance == Decimal("239.25")
    assert summary.unexplained_variance == by_cause["unexplained"]
    assert summary.repeat_variance == by_cause["repeat"] == Decimal("28.125")  # the third physio session
    assert summary.source_updated_at == episode.updated_at

    stored = {
        (line.step_id, line.event_id, line.resource_id): line
        for line in EpisodeCostLine.objects.filter(episode_cost=summary)
    }
    assert len(stored) == len(costing.lines)
    for line in costing.lines:
        row = stored[(line.step.pk if line.step else None, line.event.pk if line.event else None, line.resource.pk)]
        assert (row.standard_quantity, row.actual_quantity, row.standard_rate) == (
            line.standard_quantity,
            line.actual_quantity,
            line.standard_rate,
        )
        assert (row.standard_cost, row.actual_cost) == (line.standard_cost, line.actual_cost)
        assert (row.price_variance, row.usage_variance, row.los_variance) == (
            line.price_variance,
            line.usage_variance,
            line.los_variance,
        )
        assert row.salaried == line.resource.salaried
        assert row.variance_id == (line.variance.pk if line.variance else None)
        assert row.cause == (line.cause if line.total_variance else "")
    addition = stored[(None, transfusion.pk, tkr["WARD-NURSE"].pk)]
    assert (addition.actual_quantity, addition.standard_quantity) == (Decimal("45"), 0)  # all usage: off the pathway
    assert stored[(tkr["SURGERY"].pk, None, tkr["IMPLANT"].pk)].cause == "system"


def test_a_repeat_explains_what_the_repeated_step_used_not_a_dearer_price(knee, alice):
    tkr, episode = knee
    for kind in (Variance.Type.SUBSTITUTION, Variance.Type.OVERRIDE):
        services.variance_withdraw(
            variance=episode.variances.get(variance_type=kind), reason="Recorded on the wrong episode", actor=alice
        )
    # A return to theatre: a second operation, whose implant is the planned one at the standard rate.
    services.event_record(
        episode=episode,
        step=tkr["SURGERY"],
        occurred_at=episode.started_at + timedelta(days=2),
        source="manual",
        quantities=[{"resource": "THEATRE", "quantity": "60"}],
        actor=alice,
    )

    costing = cost_episode(episode)
    implant = next(line for line in costing.lines if line.resource.code == "IMPLANT")

    assert implant.repeated and implant.price_variance == Decimal("200") and implant.usage_variance > 0
    assert dict(implant.by_cause()) == {"repeat": implant.usage_variance, "unexplained": Decimal("200")}
    parts = {part.component: part.cause for part in costing.decomposition() if part.line is implant}
    assert parts == {Component.PRICE: "unexplained", Component.USAGE: "repeat"}
    by_cause = costing.by_cause()
    assert by_cause["unexplained"] >= Decimal("200")
    assert sum(by_cause.values()) == costing.total_variance


def test_a_resource_the_step_does_not_plan_is_not_a_repeat_however_often_the_step_was_done(knee, alice):
    tkr, episode = knee
    services.event_record(
        episode=episode,
        step=tkr["PHYSIO"],
        occurred_at=episode.started_at + timedelta(days=3, hours=2),
        source="manual",
        quantities=[{"resource": "WARD-NURSE", "quantity": "30"}],
        actor=alice,
    )

    extra = next(line for line in cost_episode(episode).lines if line.step == tkr["PHYSIO"] and not line.planned)

    assert extra.resource.code == "WARD-NURSE" and extra.usage_variance > 0
    assert not extra.repeated and extra.cause == "unexplained"
