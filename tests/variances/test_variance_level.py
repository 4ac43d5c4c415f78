"""Recording a variance asks its level (process or outcome), one of the axes DOMAIN.md lists as
recorded, with the service's default (process) chosen."""

import re

from tests.conftest import login
from tests.variances.factories import reason, step
from tests.variances.test_variance_form_defaults import checked
from variances.models import Variance


def record(client, episode, **extra):
    return client.post(
        f"/variances/episodes/{episode.pk}/variances/new/",
        {
            "step": step(episode.version, "SURGERY").pk,
            "variance_type": "delay",
            "reason": reason("limited-time").pk,
            "valence": "negative",
            "occurred_at": "2026-03-02T08:00",
            **extra,
        },
    )


def test_the_record_form_asks_the_level_with_process_chosen(client, episode, alice):
    login(client, alice)

    page = client.get(f"/variances/episodes/{episode.pk}/variances/new/").content.decode()

    assert re.search(r'<fieldset id="id_level"[^>]*>\s*<legend>Level</legend>', page)
    assert checked(page, "level") == ["process"]
    assert "Outcome</label>" in page


def test_an_outcome_variance_is_recorded_as_such(client, episode, alice):
    login(client, alice)

    response = record(client, episode, level="outcome")

    assert response.status_code == 302
    assert Variance.objects.get(episode=episode).level == "outcome"


def test_a_record_without_a_level_is_a_process_variance_as_the_service_has_it(client, episode, alice):
    login(client, alice)

    response = record(client, episode)

    assert response.status_code == 302
    assert Variance.objects.get(episode=episode).level == "process"


def test_a_level_not_offered_is_refused_by_the_field(client, episode, alice):
    login(client, alice)

    page = record(client, episode, level="structural").content.decode()

    assert '<p class="field-error" id="id_level_error">Select a valid choice.' in page
    assert not Variance.objects.filter(episode=episode).exists()
