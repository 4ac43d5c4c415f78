"""My work: detected departures wait with a one-tap Explain, pre-filled, reasons ranked."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import event, reason, start, step
from variances import services
from variances.detection import evaluate_episode
from variances.models import Variance


def h(hours: float):
    return T0 + timedelta(hours=hours)


@pytest.fixture
def late_surgery(episode, alice, clock):
    clock.move_to(h(31))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(30), actor=alice)
    evaluate_episode(episode.pk)
    return Variance.objects.get(episode=episode, variance_type="delay")


def test_my_work_lists_the_unexplained_variance_with_an_explain_link(client, late_surgery, alice):
    login(client, alice)
    page = client.get("/").content.decode()

    assert "1</strong> departure from a pathway on your patients needs a reason" in page
    assert f'href="/variances/{late_surgery.pk}/explain/' in page
    assert "Total knee replacement" in page
    assert 'aria-label="1 unexplained variances"' in page  # the count in the navigation


def test_the_explain_form_is_prefilled_and_ranks_reasons_used_for_this_step(client, late_surgery, knee, org, alice):
    # Two earlier patients: SURGERY delays explained by "limited time", once by "no theatre".
    for i, code in enumerate(["limited-time", "limited-time", "service-not-available"]):
        other = start(knee, org["ORTHO"], alice, ref=f"PT-900{i}A", started_at=h(0))
        services.variance_record(
            episode=other,
            step=step(knee, "SURGERY"),
            variance_type="delay",
            cause="system",
            reason=reason(code),
            valence="negative",
            occurred_at=h(1),
            actor=alice,
        )
    login(client, alice)
    page = client.get(f"/variances/{late_surgery.pk}/explain/").content.decode()

    assert "Delay</span> Total knee replacement" in page
    assert "6 h outside the window" in page
    assert "minutes outside" not in page
    most_used = page.index('label="Most used for this step"')
    assert page.index("Could not address recommended action due to limited time · used 2×") > most_used
    assert page.index("Could not address recommended action due to limited time · used 2×") < page.index(
        "Treatment or service is not practically available · used 1×"
    )
    assert 'name="variance_type"' not in page  # type and step are fixed: not choices


def test_errors_show_by_the_field_and_the_input_is_kept(client, late_surgery, alice):
    login(client, alice)
    response = client.post(
        f"/variances/{late_surgery.pk}/explain/", {"valence": "negative", "rationale": "Emergency took the list"}
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert 'id="id_reason_error"' in page
    assert "Emergency took the list</textarea>" in page
    assert Variance.objects.get(pk=late_surgery.pk).status == Variance.Status.UNEXPLAINED


def test_explaining_documents_it_and_the_count_drops(client, late_surgery, alice):
    login(client, alice)
    response = client.post(
        f"/variances/{late_surgery.pk}/explain/",
        {
            "reason": reason("service-not-available").pk,
            "valence": "negative",
            "rationale": "Emergency took the list",
            "next": "/",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/"

    late_surgery.refresh_from_db()
    assert (late_surgery.status, late_surgery.cause) == ("documented", "system")  # the reason's usual cause
    page = client.get("/").content.decode()
    assert "No departures are waiting for a reason" in page
    assert "unexplained variances" not in page


def test_a_discouraged_reason_is_allowed_but_flagged(client, late_surgery, alice):
    login(client, alice)
    page = client.get(f"/variances/{late_surgery.pk}/explain/").content.decode()
    assert "Patient refuses/declines (no context given) (discouraged: say more below)" in page

    client.post(
        f"/variances/{late_surgery.pk}/explain/",
        {"reason": reason("patient-refuses").pk, "valence": "neutral"},
    )
    page = client.get(f"/variances/episodes/{late_surgery.episode_id}/").content.decode()
    assert "discouraged reason" in page


def test_an_open_redirect_is_not_followed_after_explaining(client, late_surgery, alice):
    login(client, alice)
    response = client.post(
        f"/variances/{late_surgery.pk}/explain/",
        {"reason": reason().pk, "valence": "negative", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_the_variance_page_says_who_detected_it_and_who_documented_it(client, late_surgery, alice, clock):
    login(client, alice)
    waiting = client.get(f"/variances/{late_surgery.pk}/").content.decode()
    assert "<dt>Detected</dt><dd>" in waiting and " by CommonPath detection</dd>" in waiting
    assert "<dt>Documented</dt><dd>not yet: waiting for a reason</dd>" in waiting

    clock.move_to(h(33))
    client.post(
        f"/variances/{late_surgery.pk}/explain/",
        {"reason": reason("service-not-available").pk, "valence": "negative", "rationale": "Emergency took the list"},
    )

    page = client.get(f"/variances/{late_surgery.pk}/").content.decode()
    detected = timezone.localtime(late_surgery.recorded_at).strftime("%-d %b %Y %H:%M")
    documented = timezone.localtime(h(33)).strftime("%-d %b %Y %H:%M")
    # The clinician who gave the reason did not record the detection.
    assert f"<dt>Detected</dt><dd>{detected} by CommonPath detection</dd>" in page
    assert f"<dt>Documented</dt><dd>{documented} by {alice}</dd>" in page
    assert "<dt>Recorded</dt>" not in page
