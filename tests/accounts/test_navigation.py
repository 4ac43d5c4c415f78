"""Navigation depends on the role: each persona sees the links its role may follow, and no others."""

import re

import pytest
from django.urls import reverse

from tests.conftest import login

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "bob", "carol", "fred", "erin"]

# link text -> the personas who see it (alice clinician, bob lead, carol manager, fred finance, erin admin)
EXPECTED = {
    "Home": {"alice", "bob", "carol", "fred", "erin"},
    "My work": {"alice", "bob", "erin"},
    "Episodes": {"alice", "bob", "erin"},
    "Rates": {"carol", "fred", "erin"},
    "Review": {"bob"},
    "Audit": {"bob", "erin"},
    "Import": {"erin"},
    "Admin": {"erin"},
}


def nav_links(html: str) -> dict[str, str]:
    nav = re.search(r'<nav id="main-nav".*?</nav>', html, re.S).group(0)
    return {
        re.sub(r"<[^>]+>|\s+", " ", text).split("  ")[0].strip(): href
        for href, text in re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', nav, re.S)
    }


@pytest.mark.parametrize("persona", PERSONAS)
def test_it_shows_each_role_the_links_it_may_follow(client, persona, request):
    user = request.getfixturevalue(persona)

    links = nav_links(login(client, user).get(reverse("home")).content.decode())

    for text, who in EXPECTED.items():
        assert (text in links) == (persona in who), (
            f"{persona} {'should' if persona in who else 'should not'} see {text}"
        )


@pytest.mark.parametrize("persona", PERSONAS)
def test_it_only_links_pages_the_persona_can_open(client, persona, request):
    user = request.getfixturevalue(persona)
    links = nav_links(login(client, user).get(reverse("home")).content.decode())

    for text, href in links.items():
        path = href.split("#")[0]
        response = client.get(path)
        assert response.status_code in (200, 302), (
            f"{persona}: nav link {text} ({href}) answered {response.status_code}"
        )


def test_it_shows_no_navigation_to_anonymous_visitors(client, db):
    page = client.get(reverse("accounts:login")).content.decode()

    assert 'id="main-nav"' not in page
    assert "Sign out" not in page


def test_it_marks_the_current_page_for_screen_readers(client, bob):
    page = login(client, bob).get(reverse("accounts:audit_home")).content.decode()

    assert '<a href="/accounts/audit/" aria-current="page">Audit</a>' in page
