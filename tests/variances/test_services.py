"""The write path shared by browser, API and import: validation, audit, transitions."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import AuditEvent
from pathways.models import PathwayVersion
from tests.variances.conftest import T0
from tests.variances.factories import build_pathway, event, reason, resource, step
from variances import services
from variances.detection import evaluate_episodes
from variances.models import Episode, ReasonCode, StepEvent, Variance


def h(hours: float):
    return T0 + timedelta(hours=hours)


def record(episode, actor, **overrides):
    fields = {
        "episode": episode,
        "step": step(episode.version, "SURGERY"),
        "variance_type": Variance.Type.DELAY,
        "cause": Variance.Cause.SYSTEM,
        "reason": reason("service-not-available"),
        "valence": Variance.Valence.NEGATIVE,
        "rationale": "Theatre list overran",
        "occurred_at": T0,
        "actor": actor,
    }
    fields.update(overrides)
    return services.variance_record(**fields)


# --- episodes ---------------------------------------------------------------------------


def test_an_episode_starts_on_the_published_version_of_the_pathway(knee, org, alice, clock):
    episode = services.episode_start(
        pathway=knee.pathway, patient_ref="PT-1234A", org_unit=org["ORTHO"], started_at=T0, actor=alice
    )
    assert episode.version == knee
    assert AuditEvent.objects.filter(action="episode.start", object_id=str(episode.pk)).exists()


def test_an_episode_follows_the_version_in_force_on_its_start_date(clock, knee, org, alice, bob):
    from pathways import services as pathway_services

    draft = pathway_services.pathway_version_draft(pathway=knee.pathway, actor=bob, note="Day-case knees")
    next_version = pathway_services.pathway_version_publish(
        version=draft, actor=bob, note="Day-case knees from next month", effective_from=T0.date() + timedelta(days=30)
    )

    def start_on(moment, ref):
        clock.move_to(max(moment, T0), tick=False)
        return services.episode_start(
            pathway=knee.pathway, patient_ref=ref, org_unit=org["ORTHO"], started_at=moment, actor=alice
        ).version

    # Published today, in force next month: new episodes keep following the version it replaces until then.
    assert start_on(T0, "PT-0001A") == knee
    assert start_on(T0 - timedelta(days=200), "PT-0002A") == knee  # entered long after the fact
    assert start_on(T0 + timedelta(days=31), "PT-0003A") == next_version
    assert start_on(T0 + timedelta(days=29), "PT-0004A") == knee  # entered after the fact
    knee.refresh_from_db()
    assert (knee.status, next_version.status) == (PathwayVersion.Status.RETIRED, PathwayVersion.Status.PUBLISHED)


def test_the_version_in_force_is_resolved_the_same_for_one_date_and_for_many(clock, knee, bob):
    from pathways import services as pathway_services

    clock.move_to(T0, tick=False)
    v1_from = T0.date()  # the first version (the factory's) has no date: in force from the start
    versions = [knee]
    for days, note in ((100, "Second"), (200, "Third, agreed ahead of time")):
        draft = pathway_services.pathway_version_draft(pathway=knee.pathway, actor=bob, note=note)
        versions.append(
            pathway_services.pathway_version_publish(
                version=draft, actor=bob, note=note, effective_from=v1_from + timedelta(days=days)
            )
        )
    v1, v2, v3 = versions
    version_on = PathwayVersion.objects.in_force_on(knee.pathway)  # what an import uses: one query

    expected = {
        v1_from - timedelta(days=400): v1,  # before any version took effect: the first one
        v1_from: v1,
        v1_from + timedelta(days=99): v1,
        v1_from + timedelta(days=100): v2,
        v1_from + timedelta(days=199): v2,
        v1_from + timedelta(days=200): v3,
        v1_from + timedelta(days=900): v3,
    }
    for day, version in expected.items():
        assert version_on(day) == version, day
        assert PathwayVersion.objects.in_force(knee.pathway, day) == version, day


def test_an_episode_cannot_start_on_a_draft_or_an_unpublished_pathway(org, alice, clock):
    draft = build_pathway(org["ORTHO"], code="DRAFTY", publish=False)
    with pytest.raises(ValidationError, match="drafts"):
        services.episode_start(
            pathway_version=draft, patient_ref="PT-1234A", org_unit=org["ORTHO"], started_at=T0, actor=alice
        )
    with pytest.raises(ValidationError, match="no published version"):
        services.episode_start(
            pathway=draft.pathway, patient_ref="PT-1234A", org_unit=org["ORTHO"], started_at=T0, actor=alice
        )
    assert draft.status == PathwayVersion.Status.DRAFT


def test_closing_records_outcomes_and_a_closed_episode_cannot_be_closed_again(episode, alice, clock):
    clock.move_to(h(50))
    services.episode_close(
        episode=episode, ended_at=h(49), discharge_destination="usual-residence", complication=False, actor=alice
    )
    episode.refresh_from_db()
    assert (episode.status, episode.length_of_stay_days, episode.complication) == ("completed", 2, False)
    closed = AuditEvent.objects.get(action="episode.close", object_id=str(episode.pk))
    assert (closed.detail["discharge_destination"], closed.detail["readmitted_30d"], closed.detail["complication"]) == (
        "usual-residence",
        None,
        False,
    )
    with pytest.raises(ValidationError, match="already completed"):
        services.episode_close(episode=episode, ended_at=h(50), actor=alice)


def test_closing_or_exiting_against_a_revision_read_before_a_change_is_refused_under_the_lock(episode, alice, clock):
    # The API's If-Match is compared again under the row lock: a change that lands after the
    # caller's read (here, an event recorded) is not closed over unseen.
    clock.move_to(h(50))
    read = Episode.objects.get(pk=episode.pk).row_version
    event(episode, "ASSESS", at=h(1), actor=alice)
    assert Episode.objects.get(pk=episode.pk).row_version == read + 1

    with pytest.raises(
        services.StaleRevisionError, match=f"This episode was changed by someone else \\(now revision {read + 1}"
    ):
        services.episode_close(episode=episode, ended_at=h(49), actor=alice, expected_revision=read)
    with pytest.raises(services.StaleRevisionError):
        services.episode_exit(episode=episode, ended_at=h(49), reason="Moved", actor=alice, expected_revision=read)

    assert Episode.objects.get(pk=episode.pk).status == "active"
    services.episode_close(episode=episode, ended_at=h(49), actor=alice, expected_revision=read + 1)
    assert Episode.objects.get(pk=episode.pk).status == "completed"


def test_exit_needs_a_reason_and_records_an_exit_variance_for_review(episode, alice, clock):
    clock.move_to(h(5))
    with pytest.raises(ValidationError):
        services.episode_exit(episode=episode, ended_at=h(5), reason="  ", actor=alice)

    services.episode_exit(
        episode=episode,
        ended_at=h(5),
        reason="Deteriorated; transferred to ICU",
        reason_code=reason("action-not-priority"),
        actor=alice,
    )

    episode.refresh_from_db()
    exit_variance = Variance.objects.get(episode=episode)
    assert episode.status == Episode.Status.EXITED
    assert (exit_variance.variance_type, exit_variance.status, exit_variance.review_required) == (
        "exit",
        "documented",
        True,
    )
    assert exit_variance.cause == "patient"  # the reason's usual cause
    assert exit_variance.rationale == "Deteriorated; transferred to ICU"


# --- events -----------------------------------------------------------------------------


def test_an_event_with_a_known_external_id_returns_the_stored_event(episode, sam, clock):
    clock.move_to(h(2))
    first = event(episode, "ASSESS", at=h(1), actor=sam, source="api", external_id="THEATRE-42")
    again = event(episode, "ASSESS", at=h(1), actor=sam, source="api", external_id="THEATRE-42")

    assert (first.created, again.created) == (True, False)
    assert again.pk == first.pk and again.occurred_at == h(1)
    assert StepEvent.objects.count() == 1


def test_something_else_under_a_known_external_id_is_refused_not_ignored(episode, sam, clock):
    clock.move_to(h(2))
    first = event(episode, "ASSESS", at=h(1), actor=sam, source="api", external_id="THEATRE-42")

    # A corrected time from the sending system would otherwise be lost without a word.
    with pytest.raises(ValidationError, match=rf"already used for event {first.pk}, which differs in occurred_at\."):
        event(episode, "ASSESS", at=h(1.5), actor=sam, source="api", external_id="THEATRE-42")

    first.refresh_from_db()
    assert first.occurred_at == h(1) and StepEvent.objects.count() == 1


def test_an_external_id_cannot_be_reused_for_another_episode(episode, knee, org, alice, sam, clock):
    from tests.variances.factories import start

    clock.move_to(h(2))
    other = start(knee, org["ORTHO"], alice, ref="PT-0002B", started_at=h(0))
    event(episode, "ASSESS", at=h(1), actor=sam, source="api", external_id="X-1")
    with pytest.raises(ValidationError, match="another episode"):
        event(other, "ASSESS", at=h(1), actor=sam, source="api", external_id="X-1")


def test_an_event_keeps_actual_quantities_and_bumps_the_episode(episode, alice, clock):
    clock.move_to(h(4))
    before = episode.row_version
    recorded = services.event_record(
        episode=episode,
        step=step(episode.version, "SURGERY"),
        occurred_at=h(3),
        source="manual",
        quantities=[{"resource": resource(), "quantity": "120", "headcount": 2, "unit_cost": "0.70"}],
        actor=alice,
    )
    quantity = recorded.quantities.get()
    assert (quantity.quantity, quantity.headcount, quantity.unit_cost) == (Decimal("120"), 2, Decimal("0.70"))
    episode.refresh_from_db()
    assert episode.row_version == before + 1


def test_an_event_needs_a_step_of_this_version_or_an_activity(episode, org, alice, clock):
    other = build_pathway(org["ORTHO"], code="OTHER")
    with pytest.raises(ValidationError, match="Choose the pathway step"):
        services.event_record(episode=episode, occurred_at=T0, source="manual", actor=alice)
    with pytest.raises(ValidationError, match="not on this episode's pathway"):
        services.event_record(episode=episode, step=step(other, "ASSESS"), occurred_at=T0, source="manual", actor=alice)
    with pytest.raises(ValidationError, match="future"):
        services.event_record(episode=episode, activity="Transfusion", occurred_at=h(2), source="manual", actor=alice)


# --- variances --------------------------------------------------------------------------


def test_recording_a_variance_documents_it_with_revision_one_and_an_audit_event(episode, alice):
    variance = record(episode, alice)

    assert variance.status == Variance.Status.DOCUMENTED
    revision = variance.revisions.get()
    assert (revision.number, revision.changed_by, revision.reason) == (1, alice, "recorded")
    assert revision.snapshot["rationale"] == "Theatre list overran"
    assert AuditEvent.objects.filter(action="variance.record", object_id=str(variance.pk)).exists()


def test_omitting_a_critical_step_needs_a_leads_review(episode, alice):
    critical = record(episode, alice, variance_type="omission", step=step(episode.version, "SURGERY"))
    routine = record(episode, alice, variance_type="omission", step=step(episode.version, "ASSESS"))
    assert (critical.review_required, routine.review_required) == (True, False)


def test_a_variance_needs_its_coded_axes_and_a_current_reason(episode, org, alice):
    with pytest.raises(ValidationError) as exc:
        record(episode, alice, cause="", valence="")
    assert set(exc.value.message_dict) == {"cause", "valence"}

    retired = ReasonCode.objects.create(code="old-code", display="Old", retired=True)
    with pytest.raises(ValidationError, match="retired"):
        record(episode, alice, reason=retired)

    other = build_pathway(org["ORTHO"], code="OTHER")
    local = ReasonCode.objects.create(code="no-bed", display="No bed on Ward 9", pathway=other.pathway)
    with pytest.raises(ValidationError, match="another pathway"):
        record(episode, alice, reason=local)

    with pytest.raises(ValidationError, match="Exit pathway"):
        record(episode, alice, variance_type="exit")


def test_amending_needs_a_reason_and_keeps_every_earlier_revision(episode, alice):
    variance = record(episode, alice)
    with pytest.raises(ValidationError):
        services.variance_amend(variance=variance, changes={"rationale": "x"}, reason="", actor=alice)

    services.variance_amend(
        variance=variance, changes={"rationale": "Theatre list overran by 2 h"}, reason="More precise", actor=alice
    )

    variance.refresh_from_db()
    assert variance.revision == 2
    states = [services.variance_state(r)["rationale"] for r in variance.revisions.order_by("number")]
    assert states == ["Theatre list overran", "Theatre list overran by 2 h"]
    assert variance.revisions.get(number=2).reason == "More precise"


def test_a_stale_amendment_is_refused_with_its_own_exception(episode, alice, bob):
    variance = record(episode, alice)
    services.variance_amend(variance=variance, changes={"cause": "clinician"}, reason="Was staffing", actor=bob)

    with pytest.raises(services.StaleRevisionError) as exc:
        services.variance_amend(
            variance=variance, changes={"rationale": "Mine"}, reason="Edit", actor=alice, expected_revision=1
        )
    assert (exc.value.expected, exc.value.current) == (1, 2)
    variance.refresh_from_db()
    assert (variance.rationale, variance.revision) == ("Theatre list overran", 2)


def test_an_amendment_that_changes_nothing_or_an_unknown_field_is_refused(episode, alice):
    variance = record(episode, alice)
    with pytest.raises(ValidationError, match="Nothing changed"):
        services.variance_amend(variance=variance, changes={"cause": "system"}, reason="x", actor=alice)
    with pytest.raises(ValidationError, match="cannot be amended"):
        services.variance_amend(variance=variance, changes={"status": "reviewed"}, reason="x", actor=alice)


def test_withdrawing_keeps_the_variance_marked_with_its_reason(episode, alice):
    variance = record(episode, alice)
    services.variance_withdraw(variance=variance, reason="Recorded on the wrong patient", actor=alice)

    variance.refresh_from_db()
    assert (variance.status, variance.withdrawn_reason) == ("withdrawn", "Recorded on the wrong patient")
    with pytest.raises(ValidationError, match="already withdrawn"):
        services.variance_withdraw(variance=variance, reason="again", actor=alice)
    with pytest.raises(ValidationError, match="Only documented or reviewed"):
        services.variance_amend(variance=variance, changes={"rationale": "x"}, reason="x", actor=alice)


def test_only_a_clinical_lead_of_the_episodes_unit_may_review(episode, org, alice, bob, dora, erin):
    from tests.conftest import make_user

    ed_lead = make_user("george", "clinical_lead", org["ED"])
    variance = record(episode, alice)
    for outsider in (alice, dora, ed_lead, erin):
        with pytest.raises(PermissionDenied):
            services.variance_review(variance=variance, justified=True, avoidable=False, comment="", actor=outsider)

    with pytest.raises(ValidationError, match="not justified"):
        services.variance_review(variance=variance, justified=False, avoidable=True, comment="", actor=bob)
    services.variance_review(variance=variance, justified=True, avoidable=False, comment="Good call", actor=bob)

    variance.refresh_from_db()
    assert (variance.status, variance.justified, variance.avoidable, variance.reviewed_by) == (
        "reviewed",
        True,
        False,
        bob,
    )


def test_amending_a_reviewed_variance_returns_it_for_a_fresh_review(episode, alice, bob):
    variance = record(episode, alice)
    services.variance_review(variance=variance, justified=True, avoidable=False, comment="", actor=bob)

    services.variance_amend(variance=variance, changes={"cause": "clinician"}, reason="Was staffing", actor=alice)

    variance.refresh_from_db()
    assert (variance.status, variance.justified, variance.reviewed_by) == ("documented", None, None)
    reviewed = services.variance_state(variance.revisions.get(number=2))
    assert (reviewed["status"], reviewed["justified"], reviewed["reviewed_by_id"]) == ("reviewed", True, bob.pk)


def test_a_withdrawal_of_a_revision_since_changed_is_refused_not_applied(episode, alice):
    variance = record(episode, alice)
    services.variance_amend(
        variance=variance, changes={"valence": Variance.Valence.NEUTRAL}, reason="Second look", actor=alice
    )

    with pytest.raises(services.StaleRevisionError):
        services.variance_withdraw(variance=variance, reason="Wrong patient", actor=alice, expected_revision=1)

    variance.refresh_from_db()
    assert (variance.status, variance.revision) == (Variance.Status.DOCUMENTED, 2)


def test_an_episode_cannot_end_before_an_event_already_recorded(episode, alice, clock):
    clock.move_to(h(30))
    event(episode, "ASSESS", at=h(20), actor=alice)

    with pytest.raises(ValidationError) as refused:
        services.episode_close(episode=episode, ended_at=h(10), discharge_destination="usual-residence", actor=alice)

    assert refused.value.message_dict == {
        "ended_at": [
            "Pre-operative assessment is recorded at 3 Mar 2026 04:00, after this end: the episode ends at "
            "or after its last event."
        ]
    }
    episode.refresh_from_db()
    assert episode.status == Episode.Status.ACTIVE


def test_a_change_never_moves_the_episode_s_updated_at_backwards(episode, alice, clock):
    # Report summaries are stale only when computed from an earlier updated_at: a change
    # stamped before the last one (a clock stepped back, an import stamped with its start
    # while the episode changed meanwhile) would leave the old figures standing.
    ahead = h(30)
    Episode.objects.filter(pk=episode.pk).update(updated_at=ahead)  # the last change, by a clock ahead of ours
    clock.move_to(h(29))

    event(episode, "ASSESS", at=h(1), actor=alice)  # services._touch_episode
    after_event = Episode.objects.get(pk=episode.pk).updated_at
    # Detection's bulk update (surgery is now overdue: a finding), with a "now" from before the last change.
    assert evaluate_episodes([episode.pk], now=h(29)) == {"omission": 1}
    after_detection = Episode.objects.get(pk=episode.pk).updated_at
    services.episode_close(episode=episode, ended_at=h(28), actor=alice)
    after_close = Episode.objects.get(pk=episode.pk).updated_at

    assert ahead < after_event < after_detection < after_close
    assert after_close - ahead == timedelta(microseconds=3)
