"""Changing a password keeps this session and signs every other session out."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW = "a-much-longer-passphrase-77"


def signed_in(username: str) -> Client:
    client = Client()
    assert client.post(reverse("accounts:login"), {"username": username, "password": PASSWORD}).status_code == 302
    return client


def change(client, old=PASSWORD, new1=NEW, new2=NEW):
    return client.post(
        reverse("accounts:password_change"), {"old_password": old, "new_password1": new1, "new_password2": new2}
    )


def test_it_keeps_the_changing_session_and_signs_out_the_others(alice):
    laptop, ward_pc = signed_in("alice"), signed_in("alice")

    response = change(laptop)

    assert response["Location"] == reverse("accounts:password_change_done")
    assert "has been signed out" in laptop.get(response["Location"]).content.decode()
    assert laptop.get(reverse("home")).status_code == 200
    assert ward_pc.get(reverse("home")).status_code == 302  # back to the sign-in page


def test_it_shows_errors_by_the_field_and_changes_nothing(alice):
    client = signed_in("alice")

    page = change(client, old="not-it", new1="short", new2="short").content.decode()

    assert "Your old password was entered incorrectly" in page
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
