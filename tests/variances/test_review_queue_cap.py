"""The review queue counts only as far as anyone reads: past the cap it says "more than".

Counting every documented variance of a division on every view cost about 200 ms at
500,000 episodes (bench/pages.py); counted up to the cap, the database stops there.
"""

import pytest

from config.pagination import capped_count
from tests.conftest import login
from tests.variances.test_self_review import record
from variances import selectors, views
from variances.selectors import home_panel, review_queue_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_waiting(episode, alice):
    return [
        record(episode, alice, code=code, rationale=f"Reason {n}")
        for n, code in enumerate(["ASSESS", "SURGERY", "ASSESS"])
    ]


def test_the_count_stops_at_the_cap_and_says_there_are_more(three_waiting, bob):
    queue = review_queue_for(bob)
    assert capped_count(queue, 3) == (3, False)
    assert capped_count(queue, 2) == (2, True)
    assert capped_count(queue, 5) == (3, False)


def test_past_the_cap_the_home_page_and_the_queue_say_more_than(client, three_waiting, bob, monkeypatch):
    monkeypatch.setattr(selectors, "REVIEW_COUNT_CAP", 2)
    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    assert (home_panel(bob)["review_waiting"], home_panel(bob)["review_waiting_more"]) == (2, True)

    login(client, bob)
    home = client.get("/").content.decode()
    assert "<strong>More than 2</strong> documented variances of your team are waiting for your review" in home

    queue = client.get("/variances/review/").content.decode()
    assert "More than 2 variances are waiting; the queue shows the first 2 in review order." in queue
    assert "Page 1 of more than 2" in queue
    assert "Reason 0" in queue  # the oldest first, one per page here
    assert "Page 2 of more than 2" in client.get("/variances/review/?page=2").content.decode()


def test_under_the_cap_the_figures_are_exact(client, three_waiting, bob, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    assert (home_panel(bob)["review_waiting"], home_panel(bob)["review_waiting_more"]) == (3, False)
    login(client, bob)
    assert "<strong>3</strong> documented variances" in client.get("/").content.decode()
    queue = client.get("/variances/review/").content.decode()
    assert "Page 1 of 2" in queue and "more than" not in queue
