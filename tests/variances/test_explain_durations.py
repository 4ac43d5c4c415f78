"""How far outside its window a departure happened reads humanely, and an early step names its earliest time."""

from datetime import timedelta

import pytest

from pathways.templatetags.pathways import duration
from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import event
from variances.detection import evaluate_episode
from variances.models import Variance


def h(hours: float):
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (None, ""),
        (0, "0 min"),
        (1, "1 min"),
        (45, "45 min"),
        (60, "1 h"),
        (125, "2 h 5 min"),
        (1440, "1 day"),
        (1441, "1 day"),
        (2009, "1 day 9 h"),
        (2 * 1440 + 180, "2 days 3 h"),
        (7 * 1440 + 600, "7 days"),
        (19411492, "13,480 days"),
        (-90, "-1 h 30 min"),
    ],
)
def test_duration_reads_at_a_glance(minutes, text):
    assert duration(minutes) == text


def test_an_early_step_says_when_it_was_allowed_from_and_by_how_much(client, episode, alice, clock):
    clock.move_to(h(41))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(3), actor=alice)
    event(episode, "MOBILISE", at=h(7), actor=alice)
    event(episode, "DISCHARGE", at=h(40), actor=alice)  # allowed from 48 h: 8 h early
    evaluate_episode(episode.pk)
    early = Variance.objects.get(episode=episode, variance_type="early")

    login(client, alice)
    page = client.get(f"/variances/{early.pk}/explain/").content.decode()

    assert "not before 4 Mar 2026 08:00" in page
    assert "due by" not in page
    assert "8 h outside the window" in page


def test_a_long_delay_is_told_in_days_not_minutes(client, episode, alice, clock):
    clock.move_to(h(24 * 30))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(24 + 33.5), actor=alice)  # due by 24 h: 1 day 9 h 30 min late
    evaluate_episode(episode.pk)
    delay = Variance.objects.get(episode=episode, variance_type="delay", step__code="SURGERY")

    login(client, alice)
    page = client.get(f"/variances/{delay.pk}/explain/").content.decode()

    assert "due by 3 Mar 2026 08:00" in page
    assert "1 day 9 h outside the window" in page
    assert "minutes outside" not in page
