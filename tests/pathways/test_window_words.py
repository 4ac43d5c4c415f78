"""A step's timing rule in words, as the plan and the version diff show it."""

import pytest

from pathways.models import Step
from pathways.templatetags.pathways import window_label


def timed(low, high, *, anchor="SURGERY"):
    step = Step(code="PREOP", window_min_minutes=low, window_max_minutes=high)
    if anchor:
        step.anchor = Step(pk=1, code=anchor)
    return step


@pytest.mark.parametrize(
    ("low", "high", "anchor", "words"),
    [
        (0, 2160, None, "0 min to 36 h after the episode start"),
        (-100, 60, "SURGERY", "from 1 h 40 min before to 1 h after SURGERY"),
        (-1440, -120, "SURGERY", "1 day to 2 h before SURGERY"),
        (-60, -60, "SURGERY", "at 1 h before SURGERY"),
        (None, -30, "SURGERY", "at least 30 min before SURGERY"),
        (None, 15, "ER-REGISTRATION", "within 15 min after ER-REGISTRATION"),
        (-90, None, "SURGERY", "no earlier than 1 h 30 min before SURGERY"),
        (60, None, None, "no earlier than 1 h after the episode start"),
        (None, None, None, "no timing rule"),
    ],
)
def test_a_window_reads_before_or_after_its_anchor(low, high, anchor, words):
    assert window_label(timed(low, high, anchor=anchor)) == words
