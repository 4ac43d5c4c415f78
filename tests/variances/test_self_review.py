"""A second pair of eyes: a clinical lead does not review a variance they documented themselves.

Who documented a variance as it stands is whoever wrote its current revision: recorded it,
explained it (a detected one) or last amended it.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from tests.conftest import login, make_user
from tests.variances.conftest import T0
from tests.variances.factories import event, reason, step
from variances import services
from variances.detection import evaluate_episode
from variances.models import Variance
from variances.selectors import home_panel, review_queue_for

SELF_REVIEW = "You documented this variance; another clinical lead reviews it."


@pytest.fixture
def lena(org):
    """A second clinical lead of Trauma & Orthopaedics, beside bob."""
    return make_user("lena", "clinical_lead", org["ORTHO"], display_name="Ms Lena Ruiz")


def record(episode, actor, code="ASSESS", rationale="No pre-op nurse"):
    return services.variance_record(
        episode=episode,
        step=step(episode.version, code),
        variance_type="delay",
        cause="system",
        reason=reason("service-not-available"),
        valence="negative",
        rationale=rationale,
        occurred_at=T0,
        actor=actor,
    )


def review(variance, actor):
    return services.variance_review(variance=variance, justified=True, avoidable=False, comment="", actor=actor)


def test_the_lead_who_recorded_it_may_not_review_it_another_lead_may(episode, bob, lena):
    variance = record(episode, bob)

    with pytest.raises(ValidationError) as raised:
        review(variance, bob)
    assert raised.value.messages == [SELF_REVIEW]
    variance.refresh_from_db()
    assert (variance.status, variance.revision, variance.reviewed_by) == ("documented", 1, None)

    review(variance, lena)
    variance.refresh_from_db()
    assert (variance.status, variance.reviewed_by) == ("reviewed", lena)


def test_explaining_a_detected_variance_documents_it(episode, alice, bob, lena, clock):
    clock.move_to(T0 + timedelta(hours=31))
    event(episode, "ASSESS", at=T0 + timedelta(hours=1), actor=alice)
    event(episode, "SURGERY", at=T0 + timedelta(hours=30), actor=alice)
    evaluate_episode(episode.pk)
    delay = Variance.objects.get(episode=episode, variance_type="delay")
    services.variance_explain(
        variance=delay, cause="system", reason=reason(), valence="negative", rationale="List overran", actor=bob
    )

    with pytest.raises(ValidationError, match=SELF_REVIEW):
        review(delay, bob)
    review(delay, lena)


def test_the_current_revision_decides_who_documented_it(episode, alice, bob, lena):
    by_alice = record(episode, alice)
    services.variance_amend(variance=by_alice, changes={"cause": "clinician"}, reason="Was staffing", actor=bob)
    with pytest.raises(ValidationError, match=SELF_REVIEW):
        review(by_alice, bob)  # bob's amendment is what stands now

    by_bob = record(episode, bob, code="SURGERY")
    services.variance_amend(
        variance=by_bob, changes={"rationale": "Theatre list overran"}, reason="Fuller", actor=alice
    )
    review(by_bob, bob)  # alice wrote the current revision
    assert Variance.objects.get(pk=by_bob.pk).reviewed_by == bob


def test_the_queue_and_the_home_count_leave_out_the_leads_own_documentation(client, episode, alice, bob, lena):
    own = record(episode, bob, rationale="Bob's own words")
    other = record(episode, alice, code="SURGERY", rationale="Alice's words")

    assert list(review_queue_for(bob)) == [other]
    assert set(review_queue_for(lena)) == {own, other}
    assert home_panel(bob)["review_waiting"] == 1
    assert home_panel(lena)["review_waiting"] == 2

    login(client, bob)
    queue = client.get("/variances/review/").content.decode()
    assert "Alice&#x27;s words" in queue and "Bob&#x27;s own words" not in queue
    home = client.get("/").content.decode()
    assert "<strong>1</strong> documented variance of your team is waiting for your review" in home

    # His own says why it is not in his queue, instead of sending him there.
    detail = client.get(f"/variances/{own.pk}/").content.decode()
    assert SELF_REVIEW in detail and 'href="/variances/review/"' not in detail.split("</nav>", 1)[-1]
    assert SELF_REVIEW not in client.get(f"/variances/{other.pk}/").content.decode()

    review(other, bob)
    assert not review_queue_for(bob).exists() and home_panel(bob)["review_waiting"] == 0


@pytest.mark.parametrize("htmx", [False, True])
def test_posting_a_review_of_ones_own_documentation_is_refused_with_the_reason(client, episode, bob, htmx):
    own = record(episode, bob)
    login(client, bob)
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}

    response = client.post(f"/variances/{own.pk}/review/", {"justified": "yes", "avoidable": "no"}, **headers)

    assert SELF_REVIEW in response.content.decode()
    if not htmx:
        assert response.status_code == 400
    assert Variance.objects.get(pk=own.pk).status == "documented"
