"""The episode page: the pathway against what happened, and recording, closing and exiting."""

from datetime import timedelta

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import event, reason, step
from variances.detection import evaluate_episode
from variances.models import Episode, StepEvent, Variance


def h(hours: float):
    return T0 + timedelta(hours=hours)


def test_the_timeline_shows_on_time_late_missing_and_unplanned_with_variances_inline(client, episode, alice, clock):
    clock.move_to(h(31))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(30), actor=alice)
    event(episode, activity="Blood transfusion", at=h(30.5), actor=alice)
    evaluate_episode(episode.pk)
    login(client, alice)

    page = client.get(f"/variances/episodes/{episode.pk}/").content.decode()

    assert '<li class="on-time">' in page and "Pre-operative assessment" in page
    assert '<li class="late">' in page and "Done late" in page
    assert '<li class="unplanned">' in page and "Blood transfusion" in page
    assert '<li class="due">' in page  # discharge not yet due
    assert "Delay · unexplained" in page and "Addition · unexplained" in page
    assert "critical step" in page


def test_a_critical_step_not_yet_timed_reads_without_a_stray_separator(client, episode, alice):
    # MOBILISE (critical) is timed from SURGERY, not done yet: no event, no due time.
    login(client, alice)

    page = client.get(f"/variances/episodes/{episode.pk}/").content.decode()

    row = page[page.index("Mobilise on day of surgery") :]
    details = row[row.index('<p class="muted">') + len('<p class="muted">') : row.index("</p>")]
    assert details.strip() == '<span class="tag">critical step</span>'
    surgery = page[page.index("Total knee replacement") :]
    assert '· <span class="tag">critical step</span>' in surgery[: surgery.index("</p>")]


def test_a_missing_step_offers_to_record_its_reason_prefilled(client, episode, alice, clock):
    clock.move_to(h(5))
    login(client, alice)
    page = client.get(f"/variances/episodes/{episode.pk}/").content.decode()
    assessment = step(episode.version, "ASSESS")
    assert '<li class="missing">' in page
    link = f"/variances/episodes/{episode.pk}/variances/new/?step={assessment.pk}&amp;type=omission"
    assert link in page

    form = client.get(link.replace("&amp;", "&")).content.decode()
    assert f'<option value="{assessment.pk}" selected>' in form
    assert '<option value="omission" selected>' in form

    response = client.post(
        f"/variances/episodes/{episode.pk}/variances/new/?type=omission",
        {
            "step": assessment.pk,
            "variance_type": "omission",
            "reason": reason("service-not-available").pk,
            "valence": "negative",
            "rationale": "No pre-op nurse on Sunday",
            "occurred_at": "2026-03-02T12:00",
        },
    )
    assert response.status_code == 302
    variance = Variance.objects.get(episode=episode)
    assert (variance.variance_type, variance.step, variance.status, variance.cause) == (
        "omission",
        assessment,
        "documented",
        "system",
    )


def test_recording_an_event_from_the_episode_page(client, episode, alice, clock):
    clock.move_to(h(2))
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/events/new/",
        {"step": step(episode.version, "ASSESS").pk, "occurred_at": "2026-03-02T09:30", "performed_by": "Pre-op nurse"},
    )
    assert response.status_code == 302
    recorded = StepEvent.objects.get(episode=episode)
    assert (recorded.step.code, recorded.performed_by, recorded.recorded_by) == ("ASSESS", "Pre-op nurse", alice)

    response = client.post(f"/variances/episodes/{episode.pk}/events/new/", {"occurred_at": "2026-03-02T09:40"})
    assert "name the activity if it is not on the pathway" in response.content.decode()


def test_closing_an_episode_records_the_outcomes(client, episode, alice, clock):
    clock.move_to(h(52))
    login(client, alice)
    response = client.post(
        f"/variances/episodes/{episode.pk}/close/",
        {"ended_at": "2026-03-04T10:00", "discharge_destination": "usual-residence", "complication": "no"},
    )
    assert response.status_code == 302
    episode.refresh_from_db()
    assert (episode.status, episode.discharge_destination, episode.complication, episode.readmitted_30d) == (
        "completed",
        "usual-residence",
        False,
        None,
    )


def test_exiting_requires_a_reason_and_then_waits_for_review(client, episode, alice, bob, clock):
    clock.move_to(h(6))
    login(client, alice)
    response = client.post(f"/variances/episodes/{episode.pk}/exit/", {"ended_at": "2026-03-02T13:00", "reason": ""})
    assert response.status_code == 200
    assert 'id="id_reason_error"' in response.content.decode()
    assert Episode.objects.get(pk=episode.pk).status == "active"

    client.post(
        f"/variances/episodes/{episode.pk}/exit/",
        {
            "ended_at": "2026-03-02T13:00",
            "reason": "Septic; moved to ICU",
            "reason_code": reason("action-not-priority").pk,
        },
    )
    assert Episode.objects.get(pk=episode.pk).status == "exited"
    login(client, bob)
    queue = client.get("/variances/review/").content.decode()
    assert "Exit: Left the pathway" in queue
    assert "review required" in queue and "Septic; moved to ICU" in queue


def test_starting_an_episode_from_the_browser(client, knee, org, alice, clock):
    login(client, alice)
    response = client.post(
        "/variances/episodes/new/",
        {
            "pathway": knee.pathway_id,
            "patient_ref": " PT-5551X ",
            "org_unit": org["ORTHO-W7"].pk,
            "responsible_clinician": alice.pk,
            "started_at": "2026-03-02T07:30",
        },
    )
    episode = Episode.objects.get()
    assert response["Location"] == f"/variances/episodes/{episode.pk}/"
    assert (episode.patient_ref, episode.version, episode.org_unit) == ("PT-5551X", knee, org["ORTHO-W7"])


def test_starting_a_second_active_episode_for_the_patient_names_the_first(client, episode, knee, org, alice, clock):
    login(client, alice)
    form = {
        "pathway": knee.pathway_id,
        "patient_ref": episode.patient_ref,
        "org_unit": org["ORTHO-W7"].pk,
        "responsible_clinician": alice.pk,
        "started_at": "2026-03-02T07:30",
    }

    response = client.post("/variances/episodes/new/", form)

    assert response.status_code == 200
    message = (
        f"{episode.patient_ref} already has an active episode on {knee.pathway.code} (episode {episode.pk}). "
        "Record on that one, or complete or exit it before starting another."
    )
    assert f'<p class="field-error" id="id_patient_ref_error">{message}</p>' in response.content.decode()
    assert Episode.objects.count() == 1
