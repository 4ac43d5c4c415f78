"""List pages make the same number of queries for 2 items as for 5: no N+1."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import event, reason, start, step
from variances import services
from variances.detection import evaluate_episodes


def populate(knee, org, alice, n: int, prefix: str) -> None:
    ids = []
    for i in range(n):
        episode = start(knee, org["ORTHO"], alice, ref=f"{prefix}-{i:04d}Q", started_at=T0)
        event(episode, "ASSESS", at=T0 + timedelta(hours=10), actor=alice)
        event(episode, activity="Blood transfusion", at=T0 + timedelta(hours=11), actor=alice)
        services.variance_record(
            episode=episode,
            step=step(knee, "MOBILISE"),
            variance_type="omission",
            cause="patient",
            reason=reason("patient-contraindication"),
            valence="neutral",
            rationale="Hypotension",
            occurred_at=T0 + timedelta(hours=12),
            actor=alice,
        )
        ids.append(episode.pk)
    evaluate_episodes(ids)


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


URLS = ["/", "/variances/", "/variances/episodes/", "/variances/review/"]


def test_list_pages_do_not_query_per_row(client, knee, org, alice, bob, clock):
    clock.move_to(T0 + timedelta(hours=30))
    populate(knee, org, alice, 2, "PTA")
    login(client, bob)
    few = {url: queries_for(client, url) for url in URLS}
    login(client, alice)
    few_alice = {url: queries_for(client, url) for url in URLS[:3]}

    populate(knee, org, alice, 3, "PTB")  # 5 in all: the home preview (10 rows) is not yet full
    login(client, bob)
    many = {url: queries_for(client, url) for url in URLS}
    login(client, alice)
    many_alice = {url: queries_for(client, url) for url in URLS[:3]}

    assert many == few
    assert many_alice == few_alice


def test_the_episode_page_queries_do_not_grow_with_events(client, knee, org, alice, clock):
    clock.move_to(T0 + timedelta(hours=30))
    episode = start(knee, org["ORTHO"], alice, ref="PT-0001Q", started_at=T0)
    event(episode, "ASSESS", at=T0 + timedelta(hours=1), actor=alice)
    login(client, alice)
    before = queries_for(client, f"/variances/episodes/{episode.pk}/")

    for hour in range(2, 12):
        event(episode, "STAY", at=T0 + timedelta(hours=hour), actor=alice)
        event(episode, activity=f"Observation round {hour}", at=T0 + timedelta(hours=hour), actor=alice)
    evaluate_episodes([episode.pk])

    assert queries_for(client, f"/variances/episodes/{episode.pk}/") == before
