"""The reason select lists each reason once: the most used for the step first (only when a step is
known), then the others by category, without the ones already listed. A reason listed twice is read
twice by a screen reader and found twice by type-ahead."""

import re
from datetime import timedelta

import pytest

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import reason, start, step
from variances import services
from variances.models import ReasonCode


def reason_groups(page: str) -> list[tuple[str, list[str]]]:
    """(group label, option texts) of the reason select, in order."""
    select = re.search(r'<select name="reason"[^>]*>(.*?)</select>', page, re.S).group(1)
    return [
        (label, re.findall(r'<option value="\d+"[^>]*>([^<]*)</option>', options))
        for label, options in re.findall(r'<optgroup label="([^"]*)">(.*?)</optgroup>', select, re.S)
    ]


@pytest.fixture
def history(knee, org, alice, clock):
    """Earlier SURGERY delays: limited time twice, the pathway's own "no bed on Ward 7" once."""
    local = ReasonCode.objects.create(
        code="no-bed-w7", display="No bed on Ward 7", pathway=knee.pathway, category="not-convenient-feasible"
    )
    for i, code in enumerate(["limited-time", "limited-time", None]):
        other = start(knee, org["ORTHO"], alice, ref=f"PT-800{i}A", started_at=T0 - timedelta(hours=5))
        services.variance_record(
            episode=other,
            step=step(knee, "SURGERY"),
            variance_type="delay",
            cause="system",
            reason=reason(code) if code else local,
            valence="negative",
            occurred_at=T0 - timedelta(hours=1),
            actor=alice,
        )
    return local


def test_with_a_step_the_most_used_come_first_and_each_reason_once(client, episode, history, alice):
    login(client, alice)
    surgery = step(episode.version, "SURGERY")

    page = client.get(f"/variances/episodes/{episode.pk}/variances/new/?step={surgery.pk}&type=delay").content.decode()

    groups = reason_groups(page)
    label, ranked = groups[0]
    assert label == "Most used for this step"
    assert ranked == [
        "Could not address recommended action due to limited time · used 2×",
        "No bed on Ward 7 · used 1×",
    ]
    listed = [text.split(" · ")[0] for _, options in groups for text in options]
    assert len(listed) == len(set(listed)) == ReasonCode.objects.filter(retired=False).count()
    assert "No bed on Ward 7" not in [text for label, options in groups[1:] for text in options]
    assert "Local to this pathway" not in [label for label, _ in groups]  # its only local reason is ranked
    assert not any("used" in text for _, options in groups[1:] for text in options)


def test_without_a_step_there_is_no_ranked_group_and_each_reason_once(client, episode, history, alice):
    login(client, alice)

    page = client.get(f"/variances/episodes/{episode.pk}/variances/new/?type=delay").content.decode()

    groups = reason_groups(page)
    assert "Most used for this step" not in page
    assert groups[0] == ("Local to this pathway", ["No bed on Ward 7"])
    listed = [text for _, options in groups for text in options]
    assert len(listed) == len(set(listed)) == ReasonCode.objects.filter(retired=False).count()
    assert "Could not address recommended action due to limited time" in listed
    assert not any("used" in text for text in listed)  # a count of uses for what, unsaid


def test_the_exit_form_lists_each_reason_once_without_a_ranked_group(client, episode, knee, org, alice):
    earlier = start(knee, org["ORTHO"], alice, ref="PT-8100A", started_at=T0 - timedelta(hours=5))
    services.episode_exit(
        episode=earlier,
        ended_at=T0 - timedelta(hours=1),
        reason="Transferred to cardiology",
        reason_code=reason("prefers-alternative"),
        cause="patient",
        actor=alice,
    )
    login(client, alice)

    page = client.get(f"/variances/episodes/{episode.pk}/exit/").content.decode()

    select = re.search(r'<select name="reason_code"[^>]*>(.*?)</select>', page, re.S).group(1)
    listed = re.findall(r'<option value="\d+"[^>]*>([^<]*)</option>', select)
    assert len(listed) == len(set(listed)) == ReasonCode.objects.filter(retired=False).count()
    assert "Most used for this step" not in page
