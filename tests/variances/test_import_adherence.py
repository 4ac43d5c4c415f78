"""Step adherence ("IV antibiotics within 1 hour of sepsis screening: N of M"), as reports read it."""

import pytest

from pathways.models import Step
from tests.conftest import Role, make_user
from tests.variances.importing import GOOD, POOR, T0, run, sepsis_version, write_csv
from variances import services
from variances.adherence import step_adherence, window_text
from variances.models import ReasonCode, Variance

pytestmark = pytest.mark.django_db

NO_SCREENING = [("ER Registration", 0), ("ER Triage", 5), ("IV Antibiotics", 20), ("Release A", 600)]
EARLY_ANTIBIOTICS = [("ER Registration", 0), ("IV Antibiotics", 2), ("ER Sepsis Triage", 8), ("Release A", 600)]


@pytest.fixture
def imported(org, tmp_path):
    sepsis_version(org)
    cases = [("good", T0, GOOD), ("poor", T0, POOR), ("unscreened", T0, NO_SCREENING), ("early", T0, EARLY_ANTIBIOTICS)]
    run(write_csv(tmp_path / "ed.csv", cases), org, closed=True)
    run(write_csv(tmp_path / "em.csv", [("other", T0, GOOD)]), org, closed=True, org_unit=org["EM"])


def by_code(rows):
    return {r.code: r for r in rows}


def test_each_step_counts_on_time_late_early_and_missing(imported, org):
    rows = by_code(step_adherence("SEPSIS-ED", [org["ED"].pk]))

    antibiotics = rows["IV-ANTIBIOTICS"]
    # good: late (80 min); poor: missing; unscreened: not assessed (no screening to time it from); early: early
    assert (antibiotics.on_time, antibiotics.late, antibiotics.early, antibiotics.missing) == (0, 1, 1, 1)
    assert (antibiotics.not_assessed, antibiotics.total, antibiotics.episodes) == (1, 3, 4)
    screening = rows["SEPSIS-TRIAGE"]
    assert (screening.on_time, screening.late, screening.missing) == (2, 1, 1)
    assert rows["ER-REGISTRATION"].sentence == "Registration: 4 of 4"
    assert antibiotics.sentence == "IV antibiotics within 1 hour of sepsis screening: 0 of 3"
    assert rows["ADMISSION"].total == 1  # optional: only the one admitted patient is judged
    assert list(rows) == [
        "ER-REGISTRATION",
        "ER-TRIAGE",
        "SEPSIS-TRIAGE",
        "LACTATE",
        "BLOODS",
        "IV-ANTIBIOTICS",
        "IV-FLUIDS",
        "ADMISSION",
        "DISCHARGE",
    ]


def test_it_covers_all_units_unless_told_otherwise(imported, org):
    everywhere = by_code(step_adherence("SEPSIS-ED"))
    em_only = by_code(step_adherence("SEPSIS-ED", [org["EM"].pk]))

    assert everywhere["IV-ANTIBIOTICS"].episodes == 5
    assert (em_only["IV-ANTIBIOTICS"].late, em_only["IV-ANTIBIOTICS"].total) == (1, 1)


def test_a_withdrawn_variance_no_longer_counts(imported, org, erin):
    late = Variance.objects.get(episode__org_unit=org["EM"], step__code="IV-ANTIBIOTICS")
    services.variance_withdraw(variance=late, reason="The timestamp was the prescription, not the dose", actor=erin)

    row = by_code(step_adherence("SEPSIS-ED", [org["EM"].pk]))["IV-ANTIBIOTICS"]

    assert (row.on_time, row.late) == (1, 0)


def test_departures_are_split_by_their_record_so_justified_care_is_not_read_as_failure(imported, org, erin):
    antibiotics = Variance.objects.filter(episode__org_unit=org["ED"], step__code="IV-ANTIBIOTICS")
    late, missing = antibiotics.get(variance_type="delay"), antibiotics.get(variance_type="omission")
    services.variance_explain(
        variance=late,
        cause=Variance.Cause.SYSTEM,
        reason=ReasonCode.objects.filter(retired=False, pathway=None).first(),
        valence=Variance.Valence.NEUTRAL,
        rationale="Pharmacy had no vancomycin on the unit",
        actor=erin,
    )
    services.variance_explain(
        variance=missing,
        cause=Variance.Cause.PATIENT,
        reason=ReasonCode.objects.filter(retired=False, pathway=None).first(),
        valence=Variance.Valence.NEUTRAL,
        rationale="Declined antibiotics after discussion",
        actor=erin,
    )
    missing.refresh_from_db()
    colleague = make_user("ed-lead-2", Role.CLINICAL_LEAD, org["ED"])
    services.variance_review(
        variance=missing, justified=True, avoidable=False, comment="Documented refusal", actor=colleague
    )

    row = by_code(step_adherence("SEPSIS-ED", [org["ED"].pk]))["IV-ANTIBIOTICS"]

    # late: documented, awaiting review; missing: reviewed and justified; early: no reason yet
    assert (row.late, row.early, row.missing) == (1, 1, 1)
    assert (row.justified, row.awaiting_review, row.unjustified, row.undocumented) == (1, 1, 0, 1)


def test_it_is_a_fixed_number_of_queries(imported, org, django_assert_num_queries):
    with django_assert_num_queries(4):
        rows = step_adherence("SEPSIS-ED")
    assert len(rows) == 9


def test_an_unknown_pathway_has_no_rows(db):
    assert step_adherence("NOPE") == []


@pytest.mark.parametrize(
    ("anchor", "low", "high", "text"),
    [
        ("Sepsis screening", 0, 60, "within 1 hour of sepsis screening"),
        ("Sepsis screening", None, 240, "within 4 hours of sepsis screening"),
        ("Registration", 0, 15, "within 15 minutes of registration"),
        (None, 0, None, "any time after the start of the episode"),
        (None, None, None, "no time limit"),
        ("CRP and leucocytes", 30, 90, "30 minutes to 90 minutes after CRP and leucocytes"),
        (None, 2880, 5760, "2 days to 4 days after the start of the episode"),
        (None, 1440, None, "at least 24 hours after the start of the episode"),
        (None, -30, 60, "from 30 minutes before to 1 hour after the start of the episode"),
    ],
)
def test_windows_read_as_words(anchor, low, high, text):
    step = Step(window_min_minutes=low, window_max_minutes=high)
    if anchor:
        step.anchor = Step(pk=1, name=anchor)
        step.anchor_id = 1
    assert window_text(step) == text
