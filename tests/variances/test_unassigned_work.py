"""Departures on episodes nobody is responsible for (imported ones, say) are the unit's shared work."""

from datetime import timedelta

import pytest

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import event, reason, start
from variances import services
from variances.detection import evaluate_episode
from variances.models import Variance


def h(hours: float):
    return T0 + timedelta(hours=hours)


@pytest.fixture
def unassigned_delay(knee, org, alice, clock):
    """A late surgery on an ORTHO episode with no responsible clinician."""
    episode = start(knee, org["ORTHO"], None, ref="PT-7001A", started_at=h(0), actor=alice)
    clock.move_to(h(31))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(30), actor=alice)
    evaluate_episode(episode.pk)
    return Variance.objects.get(episode=episode, variance_type="delay")


def test_my_work_shows_the_units_unassigned_departures_to_its_clinicians_and_leads(
    client, unassigned_delay, alice, bob
):
    for person in (alice, bob):
        login(client, person)
        page = client.get("/variances/").content.decode()

        section = page[page.index('id="unassigned-h"') :]
        assert "No responsible clinician" in page
        assert f'href="/variances/{unassigned_delay.pk}/explain/' in section
        assert "PT-7001A" in section
        home = client.get("/").content.decode()
        assert "1</strong> departure on episodes with no responsible clinician in your units needs a reason" in home
        client.logout()


def test_another_units_clinician_does_not_see_them(client, unassigned_delay, dora):
    login(client, dora)
    page = client.get("/variances/").content.decode()

    assert "PT-7001A" not in page
    assert "No departures are waiting on episodes without a responsible clinician" in page
    assert "no responsible clinician in your units" not in client.get("/").content.decode()


def test_an_assigned_episodes_departures_stay_in_its_clinicians_own_list(client, episode, alice, bob, clock):
    clock.move_to(h(31))
    event(episode, "ASSESS", at=h(1), actor=alice)
    event(episode, "SURGERY", at=h(30), actor=alice)
    evaluate_episode(episode.pk)
    login(client, bob)
    page = client.get("/variances/").content.decode()

    assert episode.patient_ref not in page[page.index('id="unassigned-h"') : page.index('id="active-h"')]


def test_explaining_one_takes_it_off_the_shared_list(client, unassigned_delay, bob):
    services.variance_explain(variance=unassigned_delay, cause="system", reason=reason(), valence="negative", actor=bob)
    login(client, bob)

    page = client.get("/variances/").content.decode()

    assert "PT-7001A" not in page[page.index('id="unassigned-h"') : page.index('id="active-h"')]
