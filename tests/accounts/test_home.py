"""Each role lands on a home page that says what that person can do today."""

import re

import pytest
from django.urls import reverse

from tests.conftest import login

pytestmark = pytest.mark.django_db


def home_of(client, user) -> str:
    response = login(client, user).get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def test_it_greets_a_clinician_with_their_work_and_explains_the_empty_inbox(client, alice):
    page = home_of(client, alice)

    assert "Good to see you, Dr Alice Adeyemi" in page
    assert '<h2 id="my-work-h">My work</h2>' in page
    assert "No departures are waiting for a reason" in page
    assert "You are responsible for <strong>0</strong> active episodes" in page
    assert '<h2 id="figures-h">Figures</h2>' not in page


def test_it_shows_a_clinical_lead_the_clinical_work_panel(client, bob):
    page = home_of(client, bob)

    assert '<h2 id="my-work-h">My work</h2>' in page
    assert '<h2 id="figures-h">Figures</h2>' not in page


@pytest.mark.parametrize("persona", ["carol", "fred"])
def test_it_shows_managers_and_finance_figures_not_a_clinical_inbox(client, persona, request):
    page = home_of(client, request.getfixturevalue(persona))

    assert '<h2 id="figures-h">Figures</h2>' in page
    assert "No report has been computed yet" in page
    assert '<h2 id="my-work-h">My work</h2>' not in page


def test_it_shows_an_admin_both_the_clinical_and_the_financial_panels(client, erin):
    page = home_of(client, erin)

    assert '<h2 id="my-work-h">My work</h2>' in page
    assert '<h2 id="figures-h">Figures</h2>' in page


@pytest.mark.parametrize(
    ("persona", "label"),
    [
        ("alice", "Clinician"),
        ("bob", "Clinical lead"),
        ("carol", "Manager"),
        ("fred", "Finance"),
        ("erin", "Administrator"),
    ],
)
def test_it_labels_the_signed_in_role_in_words(client, persona, label, request):
    page = home_of(client, request.getfixturevalue(persona))

    assert f'<span class="role-badge">{label}</span>' in page
    # A long name is cut short on a narrow header (.who-name), never the role after it.
    assert re.search(rf'<span class="who-name">[^<]+</span> <span class="role-badge">{label}</span>', page)


def test_it_tells_everyone_when_no_pathway_is_published_yet(client, alice):
    assert "No pathway has been published yet" in home_of(client, alice)


def test_it_tells_a_user_without_any_role_to_ask_for_one(client, nobody):
    response = login(client, nobody).get(reverse("home"))

    assert response.status_code == 403
    assert "Your account has no role in any unit yet" in response.content.decode()
    assert "Ask your administrator to give you a role" in response.content.decode()
