"""The lead's review form in the queue: each group named by its legend, each error tied to its field,
and a failed try that keeps the queue page to return to (the review URL answers POST only)."""

import re

import pytest

from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import routine_delay

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def documented(episode, alice):
    return routine_delay(episode, alice, at=T0)


def hidden_next(html: str) -> str:
    return re.search(r'<input type="hidden" name="next" value="([^"]*)">', html).group(1).replace("&amp;", "&")


def test_it_names_each_choice_group_with_a_fieldset_legend(client, documented, bob):
    login(client, bob)
    html = client.get("/variances/review/").content.decode()

    pk = documented.pk
    assert f'<fieldset class="field" id="j-{pk}">\n    <legend>Justified?</legend>' in html
    assert f'<fieldset class="field" id="a-{pk}">\n    <legend>Avoidable?</legend>' in html
    assert 'role="radiogroup"' not in html
    assert "aria-invalid" not in html  # nothing is in error before a try


def test_it_ties_each_error_to_its_field(client, documented, bob):
    login(client, bob)
    html = client.post(f"/variances/{documented.pk}/review/", {}, **HX).content.decode()

    pk = documented.pk
    justified = re.search(rf'<fieldset [^>]*id="j-{pk}"[^>]*>(.*?)</fieldset>', html, re.S)
    assert f'aria-describedby="j-{pk}-error"' in justified.group(0)
    assert f'<p class="field-error" id="j-{pk}-error">This field is required.</p>' in justified.group(1)
    assert justified.group(1).count('aria-invalid="true"') == 2  # both of its radios
    assert f'aria-describedby="a-{pk}-error"' in html
    assert 'role="alert"' not in html  # focus goes to the first field in error: no shouting over it

    html = client.post(f"/variances/{pk}/review/", {"justified": "no", "avoidable": "no"}, **HX).content.decode()
    assert re.search(
        rf'<textarea id="c-{pk}" name="comment" rows="2" aria-describedby="c-{pk}-help c-{pk}-error" aria-invalid="true">',
        html,
    )
    assert f'<p class="field-error" id="c-{pk}-error">Say why the departure was not justified' in html
    assert "aria-invalid" not in html.split(f'id="c-{pk}"')[0]  # the radios were answered


def test_the_queue_page_stays_next_after_a_failed_try(client, documented, bob):
    login(client, bob)
    queue = client.get("/variances/review/?required=0&page=1").content.decode()
    assert hidden_next(queue) == "/variances/review/?required=0&page=1"

    failed = client.post(
        f"/variances/{documented.pk}/review/", {"justified": "yes", "next": "/variances/review/?page=1"}, **HX
    )
    assert hidden_next(failed.content.decode()) == "/variances/review/?page=1"

    # without JavaScript: the error page, then the queue again once it succeeds
    plain = client.post(
        f"/variances/{documented.pk}/review/", {"justified": "yes", "next": "/variances/review/?page=1"}
    )
    assert plain.status_code == 400
    assert hidden_next(plain.content.decode()) == "/variances/review/?page=1"
    done = client.post(
        f"/variances/{documented.pk}/review/",
        {"justified": "yes", "avoidable": "no", "next": hidden_next(plain.content.decode())},
    )
    assert done.status_code == 302 and done["Location"] == "/variances/review/?page=1"
    assert client.get(done["Location"]).status_code == 200


def test_a_next_that_is_the_review_url_itself_goes_to_the_queue(client, documented, bob):
    """A form rendered before the fix carried its own POST-only URL as next: a GET there is a 405."""
    login(client, bob)
    url = f"/variances/{documented.pk}/review/"

    done = client.post(url, {"justified": "yes", "avoidable": "no", "next": url})

    assert done["Location"] == "/variances/review/"
