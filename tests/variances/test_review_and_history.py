"""The lead's review queue (HTMX and plain POST) and the variance history page."""

from datetime import timedelta

import pytest

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import reason, step
from tests.variances.factories import routine_delay as record_routine_delay
from variances import services
from variances.models import Variance


def record_critical_omission(episode, actor, **documentation):
    return services.variance_record(
        episode=episode,
        step=step(episode.version, "MOBILISE"),
        variance_type="omission",
        cause="patient",
        reason=reason("patient-contraindication"),
        valence="neutral",
        rationale="Unstable blood pressure post-op",
        occurred_at=T0,
        actor=actor,
        **documentation,
    )


@pytest.fixture
def critical_omission(episode, alice):
    return record_critical_omission(episode, alice)


@pytest.fixture
def routine_delay(episode, alice):
    return record_routine_delay(episode, alice, at=T0)


def test_the_queue_puts_reviews_that_are_required_first(client, routine_delay, critical_omission, bob):
    login(client, bob)
    page = client.get("/variances/review/").content.decode()
    assert page.index("Omission: Mobilise on day of surgery") < page.index("Delay: Pre-operative assessment")
    assert page.count("review required") == 1

    only = client.get("/variances/review/?required=1").content.decode()
    assert "Pre-operative assessment" not in only


def test_the_queue_labels_what_the_clinician_wrote_and_links_the_episode(client, episode, alice, bob):
    record_critical_omission(episode, alice, action_taken="Mobilised the next morning")
    login(client, bob)
    page = client.get("/variances/review/").content.decode()

    assert "Rationale:</span> Unstable blood pressure post-op" in page
    assert "Action taken:</span> Mobilised the next morning" in page
    assert f'<a href="/variances/episodes/{episode.pk}/">{episode.patient_ref}</a>' in page


def test_reviewing_with_htmx_swaps_in_the_outcome(client, critical_omission, bob):
    login(client, bob)
    response = client.post(
        f"/variances/{critical_omission.pk}/review/",
        {"justified": "yes", "avoidable": "no", "comment": "Right call"},
        HTTP_HX_REQUEST="true",
    )
    assert "Reviewed: justified, unavoidable." in response.content.decode()
    assert "review required" not in response.content.decode()  # the outcome, not the request, once reviewed
    critical_omission.refresh_from_db()
    assert (critical_omission.status, critical_omission.review_comment) == ("reviewed", "Right call")
    assert "Nothing is waiting for your review" in client.get("/variances/review/").content.decode()


def test_an_unjustified_verdict_needs_a_comment_shown_by_the_field(client, critical_omission, bob):
    login(client, bob)
    response = client.post(
        f"/variances/{critical_omission.pk}/review/", {"justified": "no", "avoidable": "yes"}, HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert "Say why the departure was not justified" in page
    assert 'value="no" checked' in page  # the choice is kept
    assert Variance.objects.get(pk=critical_omission.pk).status == "documented"


def test_reviewing_without_javascript_returns_to_the_queue(client, critical_omission, bob):
    login(client, bob)
    response = client.post(
        f"/variances/{critical_omission.pk}/review/",
        {"justified": "yes", "avoidable": "no", "next": "/variances/review/"},
    )
    assert response.status_code == 302 and response["Location"] == "/variances/review/"


def test_the_history_page_shows_every_revision_with_who_when_and_why(client, critical_omission, alice, bob):
    services.variance_amend(
        variance=critical_omission,
        changes={"rationale": "Systolic 80 after spinal"},
        reason="Added the reading",
        actor=alice,
    )
    services.variance_review(variance=critical_omission, justified=True, avoidable=False, comment="", actor=bob)
    login(client, alice)

    page = client.get(f"/variances/{critical_omission.pk}/").content.decode()

    assert "History (3 revisions)" in page
    assert "Revision 2: Added the reading" in page
    assert "<td>Unstable blood pressure post-op</td><td>Systolic 80 after spinal</td>" in page
    assert "Revision 3: reviewed" in page and "by Mr Bob Okafor" in page
    assert "Revision 1: recorded" in page


def test_amending_from_the_browser_refuses_a_stale_form(client, routine_delay, alice, bob):
    login(client, alice)
    form = {
        "variance_type": "delay",
        "step": routine_delay.step_id,
        "reason": routine_delay.reason_id,
        "cause": "system",
        "valence": "negative",
        "level": "process",
        "rationale": "Clinic overran",
        "occurred_at": "2026-03-02T08:00",
        "amend_reason": "Added detail",
        "expected_revision": 1,
    }
    services.variance_amend(variance=routine_delay, changes={"cause": "clinician"}, reason="Staffing", actor=bob)

    page = client.post(f"/variances/{routine_delay.pk}/amend/", form).content.decode()

    assert "Someone changed this variance while you had it open: it is now revision 2" in page
    assert 'value="Added detail"' in page or "Added detail</textarea>" in page
    assert 'name="expected_revision" value="2"' in page  # the form is now against the revision shown
    routine_delay.refresh_from_db()
    assert routine_delay.rationale == ""

    # Saving the kept form again applies it, knowingly, on top of the other change.
    page = client.post(f"/variances/{routine_delay.pk}/amend/", {**form, "expected_revision": 2})

    assert page.status_code == 302
    routine_delay.refresh_from_db()
    assert (routine_delay.revision, routine_delay.rationale, routine_delay.cause) == (3, "Clinic overran", "system")


def test_amending_from_the_browser_keeps_a_time_it_shows_to_the_minute(client, episode, alice):
    """The form shows 08:00 for 08:00:30: sent back unchanged, the stored time stands, seconds and all."""
    occurred = T0 + timedelta(seconds=30)
    variance = record_routine_delay(episode, alice, at=occurred)
    login(client, alice)

    response = client.post(
        f"/variances/{variance.pk}/amend/",
        {
            "variance_type": "delay",
            "step": variance.step_id,
            "reason": variance.reason_id,
            "cause": "system",
            "valence": "negative",
            "level": "process",
            "rationale": "Clinic overran",
            "occurred_at": "2026-03-02T08:00",
            "amend_reason": "Added detail",
            "expected_revision": 1,
        },
    )

    assert response.status_code == 302
    variance.refresh_from_db()
    assert (variance.rationale, variance.occurred_at, variance.revision) == ("Clinic overran", occurred, 2)
    assert variance.revisions.get(number=2).snapshot["occurred_at"] == occurred.isoformat()


def test_amending_from_the_browser_keeps_to_the_rules_of_recording(client, routine_delay, alice):
    login(client, alice)

    response = client.post(
        f"/variances/{routine_delay.pk}/amend/",
        {
            "variance_type": "delay",
            "step": "",  # a delay is a departure from a step
            "reason": routine_delay.reason_id,
            "cause": "system",
            "valence": "negative",
            "level": "process",
            "occurred_at": "2026-03-02T08:00",
            "amend_reason": "No particular step",
            "expected_revision": 1,
        },
    )

    assert response.status_code == 200
    assert (
        '<p class="field-error" id="id_step_error">Choose the pathway step this departure concerns.</p>'
        in response.content.decode()
    )
    routine_delay.refresh_from_db()
    assert (routine_delay.step.code, routine_delay.revision) == ("ASSESS", 1)
