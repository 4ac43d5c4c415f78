"""Bulk import of event logs: episodes, events, outcomes, idempotency, bad rows, detection."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.models import AuditEvent
from pathways.models import Resource
from tests.variances.importing import GOOD, POOR, T0, mapping, run, sepsis_version, write_csv, write_xes
from variances.importers import ImportFailed, MappingError
from variances.models import Episode, EventQuantity, StepEvent, Variance, validate_patient_ref

pytestmark = pytest.mark.django_db


@pytest.fixture
def sepsis(org):
    return sepsis_version(org)


def test_it_creates_one_episode_per_case_and_keeps_nothing_of_the_case_id(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("MRN-4455667", T0, GOOD), ("MRN-9988776", T0, POOR)])

    summary = run(path, org, closed=True)

    assert summary.committed
    assert (summary.cases_read, summary.episodes_created, summary.events_created) == (2, 2, len(GOOD) + len(POOR))
    refs = list(Episode.objects.values_list("patient_ref", flat=True))
    assert len(refs) == 2
    for ref in refs:
        assert re.fullmatch(r"SX-[0-9A-F]{16}", ref)
        validate_patient_ref(ref)
    stored = json.dumps(
        [
            list(Episode.objects.values()),
            list(StepEvent.objects.values()),
            list(AuditEvent.objects.values("detail", "object_id", "episode_ref")),
        ],
        default=str,
    )
    assert "4455667" not in stored and "9988776" not in stored
    assert set(Episode.objects.values_list("org_unit__code", "version_id")) == {("ED", sepsis.pk)}


def test_the_same_case_id_always_gets_the_same_reference_and_another_source_another(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD)])
    run(path, org)
    run(path, org, mapping=mapping(source="another-hospital"))

    refs = sorted(Episode.objects.values_list("patient_ref", flat=True))
    assert len(refs) == 2 and refs[0] != refs[1]


def test_it_stores_events_in_time_order_even_when_the_file_is_not(sepsis, org, tmp_path):
    shuffled = [GOOD[3], GOOD[0], GOOD[9], GOOD[1], GOOD[2]]
    path = write_csv(tmp_path / "log.csv", [("A", T0, shuffled)])

    run(path, org)

    events = list(StepEvent.objects.order_by("id").values_list("occurred_at", flat=True))
    assert events == sorted(events)
    episode = Episode.objects.get()
    assert episode.started_at == T0  # the case's first event, wherever it was in the file


def test_closed_ends_each_episode_at_its_last_care_event(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, [*GOOD, ("Return ER", 10 * 24 * 60)])])

    run(path, org, closed=True)

    episode = Episode.objects.get()
    assert episode.status == Episode.Status.COMPLETED
    assert episode.ended_at == T0 + timedelta(days=3)  # the release, not the later return


def test_without_closed_episodes_stay_active(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD)])

    run(path, org)

    episode = Episode.objects.get()
    assert (episode.status, episode.ended_at, episode.readmitted_30d) == (Episode.Status.ACTIVE, None, None)


def test_a_return_within_30_days_of_the_end_is_a_readmission_and_a_later_one_is_not(sepsis, org, tmp_path):
    path = write_csv(
        tmp_path / "log.csv",
        [
            ("back-soon", T0, [*GOOD, ("Return ER", (3 + 29) * 24 * 60)]),
            ("back-late", T0, [*GOOD, ("Return ER", (3 + 31) * 24 * 60)]),
            ("never-back", T0, GOOD),
        ],
    )

    summary = run(path, org, closed=True)

    assert summary.outcome_events == 2
    outcomes = sorted(Episode.objects.values_list("readmitted_30d", flat=True))
    assert outcomes == [False, False, True]
    assert not StepEvent.objects.filter(activity="Return ER").exists()  # an outcome, not an event of the pathway


def test_several_activities_map_to_one_step_and_the_first_satisfies_it(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, [*GOOD, ("CRP", 200), ("Leucocytes", 200)])])

    run(path, org, closed=True)

    bloods = StepEvent.objects.filter(step__code="BLOODS")
    assert bloods.count() == 4
    assert not Variance.objects.filter(step__code="BLOODS").exists()  # done at +25, repeats are no variance


def test_unmapped_activities_become_additions_and_ignored_ones_are_left_out(sepsis, org, tmp_path):
    events = [*GOOD, ("Blood culture", 15), ("Blood culture", 16), ("Billing", 17)]
    path = write_csv(tmp_path / "log.csv", [("A", T0, events)])

    summary = run(path, org, closed=True, mapping=mapping(ignore=["Billing"]))

    assert summary.unmapped == {"Blood culture": 2}
    assert (summary.events_unplanned, summary.events_ignored) == (2, 1)
    assert StepEvent.objects.filter(step=None, activity="Blood culture").count() == 2
    assert not StepEvent.objects.filter(activity="Billing").exists()
    additions = Variance.objects.filter(variance_type=Variance.Type.ADDITION)
    assert additions.count() == 1  # once per activity, repeats are not further variances


def test_detection_runs_for_every_imported_episode(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD), ("B", T0, POOR)])

    summary = run(path, org, closed=True)

    good, poor = (Episode.objects.get(pk=pk) for pk in Episode.objects.order_by("id").values_list("pk", flat=True))
    late = good.variances.get()
    assert (late.variance_type, late.step.code, late.status) == ("delay", "IV-ANTIBIOTICS", "unexplained")
    assert late.detection.minutes_outside == 20
    found = sorted(poor.variances.values_list("step__code", "variance_type"))
    assert found == [
        ("DISCHARGE", "omission"),
        ("IV-ANTIBIOTICS", "omission"),
        ("IV-FLUIDS", "omission"),
        ("SEPSIS-TRIAGE", "delay"),
    ]
    assert summary.variances == {"delay": 2, "omission": 3}


def test_importing_the_same_file_twice_creates_nothing_new(sepsis, org, tmp_path):
    path = write_xes(tmp_path / "log.xes.gz", [("A", T0, GOOD), ("B", T0, POOR)], gz=True)
    first = run(path, org, closed=True)
    counts = (Episode.objects.count(), StepEvent.objects.count(), Variance.objects.count())

    second = run(path, org, closed=True)

    assert (Episode.objects.count(), StepEvent.objects.count(), Variance.objects.count()) == counts
    assert first.events_created == second.events_already_imported == len(GOOD) + len(POOR)
    assert (second.episodes_created, second.episodes_updated, second.episodes_unchanged) == (0, 0, 2)
    assert second.events_created == 0 and not second.variances


def test_a_later_export_adds_only_what_is_new(sepsis, org, tmp_path):
    run(write_csv(tmp_path / "monday.csv", [("A", T0, POOR)]), org)
    before = Episode.objects.get().row_version
    later = POOR + [("IV Antibiotics", 100), ("Release B", 600)]
    path = write_csv(tmp_path / "tuesday.csv", [("A", T0, later), ("B", T0, GOOD)])

    summary = run(path, org, closed=True)

    assert (summary.episodes_created, summary.episodes_updated) == (1, 1)
    assert (summary.events_created, summary.events_already_imported) == (2 + len(GOOD), len(POOR))
    episode = Episode.objects.order_by("id").first()
    assert episode.events.count() == len(later)
    assert (episode.status, episode.ended_at) == (Episode.Status.COMPLETED, T0 + timedelta(minutes=600))
    assert episode.row_version > before  # the change marker moved: ETags and report summaries refresh


def test_a_bad_file_changes_nothing_and_every_problem_is_reported(sepsis, org, tmp_path):
    rows = [
        ["A", "ER Registration", T0.isoformat(), "A"],
        ["A", "ER Triage", "yesterday", "A"],
        ["B", "ER Registration", "2025-01-10T10:00:00", "A"],
        ["", "ER Triage", T0.isoformat(), "A"],
        ["C", "", T0.isoformat(), "A"],
        ["D", "ER Registration", T0.isoformat(), "A"],
    ]
    path = write_csv(tmp_path / "log.csv", None, rows=rows)

    summary = run(path, org, closed=True)

    assert not summary.committed
    assert Episode.objects.count() == StepEvent.objects.count() == 0
    problems = [str(p) for p in summary.problems]
    assert "line 3: 'yesterday' is not an ISO 8601 timestamp (expected e.g. 2014-10-22T11:15:41+02:00)" in problems
    assert any(p.startswith("line 4: the timestamp '2025-01-10T10:00:00' has no UTC offset") for p in problems)
    assert "line 5: the case_id is empty" in problems
    assert "line 6: the activity is empty" in problems
    assert summary.cases_skipped == 3


def test_skip_bad_imports_the_good_cases_and_leaves_a_bad_case_out_whole(sepsis, org, tmp_path):
    rows = [
        *[["A", a, (T0 + timedelta(minutes=m)).isoformat(), "A"] for a, m in GOOD],
        ["B", "ER Registration", T0.isoformat(), "A"],
        ["B", "IV Antibiotics", "not a time", "A"],
    ]
    path = write_csv(tmp_path / "log.csv", None, rows=rows)

    summary = run(path, org, closed=True, skip_bad=True)

    assert summary.committed
    assert (summary.cases_imported, summary.cases_skipped) == (1, 1)
    assert Episode.objects.count() == 1
    assert StepEvent.objects.count() == len(GOOD)  # nothing of case B, not even its good row
    assert [str(p) for p in summary.problems] == [
        "line 13: 'not a time' is not an ISO 8601 timestamp (expected e.g. 2014-10-22T11:15:41+02:00)"
    ]


def test_a_dry_run_reports_what_would_happen_and_saves_nothing(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD), ("B", T0, POOR)])

    summary = run(path, org, closed=True, dry_run=True)

    assert (summary.episodes_created, summary.events_created) == (2, len(GOOD) + len(POOR))
    assert summary.variances == {"delay": 2, "omission": 3}
    assert not summary.committed
    assert Episode.objects.count() == Variance.objects.count() == 0
    assert "Dry run: nothing was saved." in summary.lines()[0]


def test_the_rows_of_a_case_must_be_together(sepsis, org, tmp_path):
    rows = [
        ["A", "ER Registration", T0.isoformat(), "A"],
        ["B", "ER Registration", T0.isoformat(), "A"],
        ["A", "ER Triage", (T0 + timedelta(minutes=5)).isoformat(), "A"],
    ]
    path = write_csv(tmp_path / "log.csv", None, rows=rows)

    summary = run(path, org)

    assert not summary.committed and Episode.objects.count() == 0
    assert summary.problems[0].where == "line 4"
    assert "sort the file by case_id, then timestamp" in summary.problems[0].reason


def test_events_in_the_future_are_refused(sepsis, org, tmp_path, time_machine):
    time_machine.move_to(T0 + timedelta(hours=1), tick=False)
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD)])

    summary = run(path, org)

    assert not summary.committed
    assert "line 9: the timestamp is in the future" in [str(p) for p in summary.problems]


def test_a_cost_column_is_recorded_as_the_events_unit_cost(sepsis, org, tmp_path):
    resource = Resource.objects.create(code="ED-CHARGE", name="ED charge", kind="overhead", unit="item")
    rows = [
        ["A", "ER Registration", T0.isoformat(), "A", "480.50"],
        ["A", "ER Triage", (T0 + timedelta(minutes=5)).isoformat(), "A", ""],
    ]
    header = ("case_id", "activity", "timestamp", "resource", "cost")
    path = write_csv(tmp_path / "log.csv", None, header=header, rows=rows)

    with pytest.raises(MappingError, match="the mapping must name the cost_resource"):
        run(path, org)
    run(path, org, mapping=mapping(cost_resource="ED-CHARGE"))

    quantity = EventQuantity.objects.get()
    assert (quantity.resource, quantity.quantity, quantity.unit_cost) == (resource, 1, Decimal("480.50"))
    assert quantity.event.step.code == "ER-REGISTRATION"


def test_mapping_quantities_record_what_an_activity_consumed(sepsis, org, tmp_path):
    events = [("ER Registration", 0), ("ER Sepsis Triage", 5), ("Admission IC", 60), ("Admission NC", 90)]
    path = write_csv(tmp_path / "log.csv", [("A", T0, events)])

    run(path, org)

    quantities = dict(EventQuantity.objects.values_list("event__occurred_at", "quantity"))
    assert quantities == {T0 + timedelta(minutes=60): Decimal("1"), T0 + timedelta(minutes=90): Decimal("0")}


def test_org_unit_defaults_to_the_trust(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD)])

    run(path, org, org_unit=None)

    assert Episode.objects.get().org_unit == org["RCH"]


def test_it_refuses_a_pathway_that_does_not_exist_or_does_not_fit_the_mapping(sepsis, org, tmp_path):
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD)])
    from variances.importers import import_events

    with pytest.raises(ImportFailed, match="There is no pathway with the code NOPE"):
        import_events(path, mapping=mapping(pathway=""), pathway_code="NOPE")
    with pytest.raises(MappingError) as caught:
        run(path, org, mapping=mapping(steps={"ER Registration": "REGISTRATION"}))
    assert caught.value.problems == [
        "steps['ER Registration']: REGISTRATION is not a step of SEPSIS-ED v1 (its steps: ADMISSION, BLOODS, "
        "DISCHARGE, ER-REGISTRATION, ER-TRIAGE, IV-ANTIBIOTICS, IV-FLUIDS, LACTATE, SEPSIS-TRIAGE)"
    ]


def test_a_case_with_only_outcomes_is_a_problem_unless_its_episode_exists(sepsis, org, tmp_path):
    run(write_csv(tmp_path / "stay.csv", [("A", T0, GOOD)]), org, closed=True)
    later = [("A", T0, [("Return ER", 5 * 24 * 60)]), ("B", T0, [("Return ER", 60)])]

    summary = run(write_csv(tmp_path / "returns.csv", later), org, skip_bad=True)

    assert summary.episodes_updated == 1
    assert Episode.objects.get().readmitted_30d is True
    assert [str(p) for p in summary.problems] == [
        "line 3: the case has no activities on the pathway (only ignored or outcome ones)"
    ]


def test_an_import_is_audited_once_with_its_figures(sepsis, org, tmp_path, erin):
    path = write_csv(tmp_path / "log.csv", [("A", T0, GOOD)])

    run(path, org, closed=True, actor=erin)

    event = AuditEvent.objects.get(action="events.import")
    assert event.actor == erin
    assert event.detail["episodes_created"] == 1 and event.detail["file_name"] == "log.csv"


def test_external_ids_are_a_hash_of_source_pathway_case_activity_time_and_occurrence(sepsis, org, tmp_path):
    from variances.importers.loader import external_id_for

    path = write_csv(tmp_path / "log.csv", [("A", T0, [("ER Registration", 0), ("ER Registration", 0)])])

    run(path, org)

    stored = list(StepEvent.objects.order_by("id").values_list("external_id", flat=True))
    expected = [
        external_id_for(
            source="4tu-sepsis-cases", pathway="SEPSIS-ED", case_id="A", activity="ER Registration", at=T0, occurrence=n
        )
        for n in (0, 1)
    ]
    assert stored == expected  # a duplicate row is a second occurrence, not a clash


def _revise_without_lactate(sepsis, *, effective_from):
    """SEPSIS-ED v2: the lactate step dropped, in force from ``effective_from``."""
    from pathways import services as pathway_services

    draft = pathway_services.pathway_version_draft(pathway=sepsis.pathway, actor=None)
    pathway_services.step_remove(step=draft.steps.get(code="LACTATE"), actor=None)
    return pathway_services.pathway_version_publish(
        version=draft, actor=None, note="Lactate left to clinical judgement", effective_from=effective_from
    )


def test_each_case_follows_the_version_in_force_on_its_start_date(sepsis, org, tmp_path):
    v2 = _revise_without_lactate(sepsis, effective_from=(T0 + timedelta(days=5)).date())
    path = write_csv(tmp_path / "log.csv", [("BEFORE", T0, GOOD), ("AFTER", T0 + timedelta(days=10), GOOD)])

    summary = run(path, org, closed=True)

    assert summary.committed
    before, after = Episode.objects.order_by("started_at")
    assert (before.version_id, after.version_id) == (sepsis.pk, v2.pk)
    # On v1 the lactate event satisfies its step; on v2 there is no such step, so it is an addition.
    lactate_before = StepEvent.objects.get(episode=before, occurred_at=T0 + timedelta(minutes=20))
    lactate_after = StepEvent.objects.get(episode=after, occurred_at=T0 + timedelta(days=10, minutes=20))
    assert (lactate_before.step.code, lactate_before.activity) == ("LACTATE", "")
    assert (lactate_after.step, lactate_after.activity) == (None, "LacticAcid")
    assert all(e.step is None or e.step.version_id == v2.pk for e in StepEvent.objects.filter(episode=after))
    assert Variance.objects.filter(episode=after, variance_type="addition").count() == 1
    assert not Variance.objects.filter(episode=before, variance_type="addition").exists()
    assert summary.versions == {1: 1, 2: 1}
    assert summary.not_in_version == {"LacticAcid": 1}
    lines = "\n".join(summary.lines())
    assert "Pathway: SEPSIS-ED (v1 1 episode, v2 1 episode: each on the version in force on its start date)" in lines
    assert "Mapped, but their step is not in the version the case follows (additions there): LacticAcid (1)" in lines


def test_an_episode_imported_before_keeps_its_version_when_more_of_its_events_arrive(sepsis, org, tmp_path):
    start = T0 + timedelta(days=10)
    run(write_csv(tmp_path / "first.csv", [("CASE", start, GOOD[:3])]), org)
    _revise_without_lactate(sepsis, effective_from=T0.date())

    summary = run(write_csv(tmp_path / "later.csv", [("CASE", start, GOOD)]), org, closed=True)

    episode = Episode.objects.get()
    assert episode.version_id == sepsis.pk
    assert (summary.episodes_created, summary.episodes_updated) == (0, 1)
    lactate = StepEvent.objects.get(episode=episode, occurred_at=start + timedelta(minutes=20))
    assert lactate.step.code == "LACTATE" and lactate.step.version_id == sepsis.pk
    assert not StepEvent.objects.filter(episode=episode).exclude(step__version_id=sepsis.pk).exclude(step=None).exists()
    assert summary.events_unplanned == 0
