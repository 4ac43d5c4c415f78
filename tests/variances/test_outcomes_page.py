"""The episode page's Outcomes panel: a completed or exited episode's readmission and complication recorded or
corrected after discharge (HTMX in place, or a plain POST), by whoever may complete the episode, each change listed."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from tests.conftest import login, make_user
from tests.variances.conftest import T0
from tests.variances.factories import start
from variances import services
from variances.models import Episode


def h(hours: float):
    return T0 + timedelta(hours=hours)


@pytest.fixture
def discharged(episode, alice, clock):
    """alice's patient, completed on 4 March with no complication and the readmission not known; now 18 March."""
    clock.move_to(h(52))
    services.episode_close(episode=episode, ended_at=h(50), complication=False, actor=alice)
    clock.move_to(h(50) + timedelta(days=14))
    return Episode.objects.get(pk=episode.pk)


def url(episode) -> str:
    return f"/variances/episodes/{episode.pk}/outcomes/"


def checked(page: str, name: str) -> str:
    """The value of the radio of ``name`` that is checked."""
    found = re.findall(rf'<input type="radio" name="{name}" value="([^"]*)"[^>]* checked', page)
    assert len(found) == 1, found
    return found[0]


def panel(page: str) -> str:
    start = page.index('<section class="panel" id="outcomes"')
    return page[start : page.index("</section>", start)]


def test_a_completed_episodes_page_shows_its_outcomes_and_the_form(client, discharged, alice):
    login(client, alice)

    page = client.get(f"/variances/episodes/{discharged.pk}/").content.decode()

    outcomes = panel(page)
    assert "<dt>Readmitted within 30 days</dt><dd>Not known yet</dd>" in outcomes
    assert "<dt>Complication</dt><dd>No</dd>" in outcomes
    assert f'hx-post="{url(discharged)}"' in outcomes and 'hx-target="#outcomes"' in outcomes
    assert "<legend>Readmitted within 30 days?" in outcomes and "<legend>Complication during the episode?" in outcomes
    assert (checked(outcomes, "readmitted_30d"), checked(outcomes, "complication")) == ("", "no")
    assert f'name="expected_revision" value="{discharged.row_version}"' in outcomes
    assert "Nothing yet: these are the outcomes recorded when the episode ended." in outcomes


def test_an_active_episode_has_no_outcomes_form_and_posting_one_sends_you_back(client, episode, alice):
    login(client, alice)
    page = client.get(f"/variances/episodes/{episode.pk}/").content.decode()
    assert 'id="outcomes"' not in page

    response = client.post(url(episode), {"readmitted_30d": "yes", "expected_revision": episode.row_version})

    assert response.status_code == 302 and response["Location"] == f"/variances/episodes/{episode.pk}/"
    assert services.OUTCOMES_OF_ACTIVE in client.get(response["Location"]).content.decode()
    assert Episode.objects.get(pk=episode.pk).readmitted_30d is None


def test_recording_a_readmission_returns_to_the_page_which_lists_who_changed_it_and_when(client, discharged, bob):
    login(client, bob)

    response = client.post(
        url(discharged),
        {"readmitted_30d": "yes", "complication": "no", "expected_revision": discharged.row_version},
    )

    assert response.status_code == 302
    assert response["Location"] == f"/variances/episodes/{discharged.pk}/#outcomes"
    stored = Episode.objects.get(pk=discharged.pk)
    assert (stored.readmitted_30d, stored.complication) == (True, False)
    page = client.get(response["Location"]).content.decode()
    assert "Outcomes saved (readmitted within 30 days: yes). The change is kept in the history below." in page
    outcomes = panel(page)
    assert "<dt>Readmitted within 30 days</dt><dd>Yes</dd>" in outcomes
    assert "18 Mar 2026 10:00 by Mr Bob Okafor: Readmitted within 30 days Not known → Yes</li>" in outcomes
    assert checked(outcomes, "readmitted_30d") == "yes"
    assert f'name="expected_revision" value="{stored.row_version}"' in outcomes


def test_with_htmx_the_panel_is_swapped_in_place_saying_what_changed(client, discharged, alice):
    login(client, alice)

    response = client.post(
        url(discharged),
        {"readmitted_30d": "no", "complication": "yes", "expected_revision": discharged.row_version},
        HTTP_HX_REQUEST="true",
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page  # the panel alone
    assert '<section class="panel" id="outcomes"' in page
    assert 'role="status" tabindex="-1" data-focus-after-swap' in page
    assert "Outcomes saved (readmitted within 30 days: no, complication: yes)." in page
    assert "by Dr Alice Adeyemi: Readmitted within 30 days Not known → No; Complication No → Yes</li>" in page
    assert "<dt>Complication</dt><dd>Yes</dd>" in page


def test_saving_the_outcomes_already_recorded_says_nothing_changed(client, discharged, alice):
    login(client, alice)

    response = client.post(
        url(discharged),
        {"readmitted_30d": "", "complication": "no", "expected_revision": discharged.row_version},
        HTTP_HX_REQUEST="true",
    )

    assert "Nothing changed: these outcomes were already recorded." in response.content.decode()
    assert not AuditEvent.objects.filter(action="episode.outcomes").exists()
    assert Episode.objects.get(pk=discharged.pk).row_version == discharged.row_version


def test_a_form_with_a_problem_keeps_what_was_chosen_and_changes_nothing(client, discharged, alice):
    login(client, alice)

    response = client.post(
        url(discharged),
        {"readmitted_30d": "yes", "complication": "maybe", "expected_revision": discharged.row_version},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Outcomes after discharge</h1>" in page  # the form's own page, without JavaScript
    assert '<p class="field-error" id="id_complication_error">' in page
    assert "Select a valid choice. maybe is not one of the available choices." in page
    assert '<a href="#id_complication">Complication during the episode?: Select a valid choice.' in page
    assert checked(page, "readmitted_30d") == "yes"
    assert Episode.objects.get(pk=discharged.pk).readmitted_30d is None


def test_a_change_made_meanwhile_is_shown_and_a_second_save_applies_yours(client, discharged, alice, bob):
    opened = discharged.row_version
    services.episode_record_outcomes(episode=discharged, complication=True, actor=bob)
    login(client, alice)

    response = client.post(
        url(discharged), {"readmitted_30d": "yes", "complication": "no", "expected_revision": opened}
    )

    page = response.content.decode()
    assert "Someone changed this episode while you had it open" in page
    assert "<dt>Complication</dt><dd>Yes</dd>" in page  # bob's change, as it stands
    assert (checked(page, "readmitted_30d"), checked(page, "complication")) == ("yes", "no")  # alice's choice kept
    assert f'name="expected_revision" value="{opened + 1}"' in page
    assert Episode.objects.get(pk=discharged.pk).readmitted_30d is None

    again = client.post(
        url(discharged), {"readmitted_30d": "yes", "complication": "no", "expected_revision": opened + 1}
    )

    assert again.status_code == 302
    stored = Episode.objects.get(pk=discharged.pk)
    assert (stored.readmitted_30d, stored.complication) == (True, False)


def test_a_colleague_of_the_unit_may_record_them_as_they_may_complete_the_episode(client, discharged, org):
    colleague = make_user("colin", "clinician", org["ORTHO"])
    login(client, colleague)

    response = client.post(
        url(discharged), {"readmitted_30d": "yes", "complication": "no", "expected_revision": discharged.row_version}
    )

    assert response.status_code == 302
    assert AuditEvent.objects.get(action="episode.outcomes").actor_name == "colin"


def test_a_clinician_of_another_unit_finds_no_such_episode(client, discharged, dora):
    login(client, dora)

    assert client.get(url(discharged)).status_code == 404
    response = client.post(url(discharged), {"readmitted_30d": "yes", "expected_revision": discharged.row_version})

    assert response.status_code == 404
    assert Episode.objects.get(pk=discharged.pk).readmitted_30d is None


@pytest.mark.parametrize("persona", ["carol", "fred"])
def test_managers_and_finance_may_not(client, discharged, persona, request):
    login(client, request.getfixturevalue(persona))

    response = client.post(url(discharged), {"readmitted_30d": "yes", "expected_revision": discharged.row_version})

    assert response.status_code == 403
    assert "PT-0001A" not in response.content.decode()
    assert Episode.objects.get(pk=discharged.pk).readmitted_30d is None


def test_the_episode_page_costs_the_same_queries_however_many_changes_it_lists(client, knee, org, alice, clock):
    clock.move_to(h(52))
    few, many = (start(knee, org["ORTHO"], alice, ref=ref, started_at=T0) for ref in ("PT-0001A", "PT-0002B"))
    for episode in (few, many):
        services.episode_close(episode=episode, ended_at=h(50), actor=alice)
    for value in (True, False, True):
        services.episode_record_outcomes(episode=many, readmitted_30d=value, complication=not value, actor=alice)
    login(client, alice)

    def queries(episode) -> int:
        with CaptureQueriesContext(connection) as captured:
            page = client.get(f"/variances/episodes/{episode.pk}/").content.decode()
        assert page.count("Readmitted within 30 days Not known") == (episode == many)
        return len(captured)

    assert queries(few) == queries(many)
