"""Who sees which episodes, per persona (DOMAIN.md: individual figures are private by default).

alice: clinician in ORTHO (sees ORTHO and Ward 7); bob: clinical lead of ORTHO;
dora: clinician in ED; carol: manager of Surgery; fred: finance; erin: admin.
"""

import pytest

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import reason, start, step
from variances import services
from variances.selectors import episodes_for


@pytest.fixture
def ward_episode(knee, org, bob, clock):
    """An episode of Ward 7 (inside ORTHO) under bob."""
    return start(knee, org["ORTHO-W7"], bob, ref="PT-W7-0001", started_at=T0)


@pytest.fixture
def ed_episode(knee, org, dora, clock):
    return start(knee, org["ED"], dora, ref="PT-ED-0001", started_at=T0)


@pytest.fixture
def documented(episode, alice):
    return services.variance_record(
        episode=episode,
        step=step(episode.version, "SURGERY"),
        variance_type="delay",
        cause="system",
        reason=reason(),
        valence="negative",
        rationale="Theatre list overran",
        occurred_at=T0,  # when the episode started
        actor=alice,
    )


def test_a_clinician_sees_their_own_episodes_and_their_units_subtree(episode, ward_episode, ed_episode, alice, dora):
    assert set(episodes_for(alice)) == {episode, ward_episode}
    assert set(episodes_for(dora)) == {ed_episode}


def test_an_episode_outside_your_units_is_not_found(client, ed_episode, alice):
    login(client, alice)
    assert client.get(f"/variances/episodes/{ed_episode.pk}/").status_code == 404
    assert client.post(f"/variances/episodes/{ed_episode.pk}/events/new/", {}).status_code == 404


def test_a_clinician_can_open_a_colleagues_episode_in_their_unit(client, ward_episode, alice):
    login(client, alice)
    response = client.get(f"/variances/episodes/{ward_episode.pk}/")
    assert response.status_code == 200
    assert "PT-W7-0001" in response.content.decode()


@pytest.mark.parametrize("persona", ["carol", "fred", "nobody"])
def test_managers_and_finance_see_no_individual_episode_or_rationale(client, persona, documented, request):
    user = request.getfixturevalue(persona)
    login(client, user)
    for url in [
        "/variances/",
        "/variances/episodes/",
        f"/variances/episodes/{documented.episode_id}/",
        f"/variances/{documented.pk}/",
        "/variances/review/",
    ]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Theatre list overran" not in response.content.decode()
    assert not episodes_for(user).exists()


def test_only_clinical_leads_reach_the_review_queue(client, documented, alice, bob):
    login(client, alice)
    assert client.get("/variances/review/").status_code == 403
    assert (
        client.post(f"/variances/{documented.pk}/review/", {"justified": "yes", "avoidable": "no"}).status_code == 403
    )

    login(client, bob)
    response = client.get("/variances/review/")
    assert response.status_code == 200
    assert "Theatre list overran" in response.content.decode()


def test_a_lead_of_another_unit_cannot_see_or_review_our_variances(client, documented, org):
    from tests.conftest import make_user

    ed_lead = make_user("george", "clinical_lead", org["ED"])
    login(client, ed_lead)
    assert "Theatre list overran" not in client.get("/variances/review/").content.decode()
    response = client.post(f"/variances/{documented.pk}/review/", {"justified": "yes", "avoidable": "no"})
    assert response.status_code == 404
    documented.refresh_from_db()
    assert documented.status == "documented"


def test_a_clinician_cannot_amend_a_colleagues_variance_but_the_lead_can(client, documented, org, bob):
    from tests.conftest import make_user

    colleague = make_user("colin", "clinician", org["ORTHO"])
    login(client, colleague)
    assert client.get(f"/variances/{documented.pk}/").status_code == 200
    assert client.get(f"/variances/{documented.pk}/amend/").status_code == 403
    assert client.get(f"/variances/{documented.pk}/withdraw/").status_code == 403

    login(client, bob)
    assert client.get(f"/variances/{documented.pk}/amend/").status_code == 200


def test_the_navigation_offers_review_to_leads_only(client, alice, bob, carol):
    login(client, alice)
    page = client.get("/").content.decode()
    assert 'href="/variances/episodes/"' in page and 'href="/variances/review/"' not in page
    login(client, bob)
    assert 'href="/variances/review/"' in client.get("/").content.decode()
    login(client, carol)
    assert 'href="/variances/episodes/"' not in client.get("/").content.decode()
