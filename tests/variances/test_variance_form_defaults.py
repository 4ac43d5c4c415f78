"""Recording a variance: the valence pre-selected follows the type pre-selected."""

import re

import pytest

from tests.conftest import login
from tests.variances.factories import reason
from variances.forms import VarianceForm


def checked(page: str, name: str) -> list[str]:
    return [
        value
        for tag in re.findall(r"<input[^>]*>", page)
        if f'name="{name}"' in tag and " checked" in tag
        for value in re.findall(r'value="([^"]*)"', tag)
    ]


def test_without_a_type_the_form_shows_omission_and_negative(client, episode, alice):
    login(client, alice)

    page = client.get(f"/variances/episodes/{episode.pk}/variances/new/").content.decode()

    assert '<option value="omission" selected>' in page
    assert checked(page, "valence") == ["negative"]


@pytest.mark.parametrize(("variance_type", "valence"), [("delay", "negative"), ("addition", "neutral")])
def test_a_given_type_brings_its_usual_valence(client, episode, alice, variance_type, valence):
    login(client, alice)

    page = client.get(f"/variances/episodes/{episode.pk}/variances/new/?type={variance_type}").content.decode()

    assert f'<option value="{variance_type}" selected>' in page
    assert checked(page, "valence") == [valence]


def test_the_form_initial_type_and_valence_agree(episode):
    form = VarianceForm(episode=episode, reasons=[reason()])

    assert (form.initial["variance_type"], form.initial["valence"]) == ("omission", "negative")
