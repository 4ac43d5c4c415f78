"""Signing in and out: the session is cycled, failures lock the account, all of it audited."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client, username, password=PASSWORD):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


def test_it_shows_the_sign_in_page_to_anonymous_visitors_of_any_page(client):
    response = client.get(reverse("home"), follow=True)

    assert response.redirect_chain[-1][0].startswith(reverse("accounts:login") + "?next=/")
    assert b"<h1>Sign in</h1>" in response.content
    assert f"After {settings.AXES_FAILURE_LIMIT} wrong passwords".encode() in response.content


def test_it_signs_in_with_the_right_password_and_lands_on_home(client, alice):
    response = sign_in(client, "alice")

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    home = client.get(reverse("home"))
    assert "Good to see you, Dr Alice Adeyemi" in home.content.decode()


def test_it_cycles_the_session_key_at_sign_in(client, alice):
    client.get(reverse("accounts:login"))
    session = client.session
    session["before"] = "sign-in"
    session.save()
    key_before = session.session_key

    sign_in(client, "alice")

    assert client.session.session_key != key_before
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_it_refuses_a_wrong_password_with_a_message_and_keeps_the_username(client, alice):
    response = sign_in(client, "alice", "not-her-password")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Please enter a correct username and password" in page
    assert 'value="alice"' in page
    assert "_auth_user_id" not in client.session


def test_it_signs_out_on_post_and_forgets_the_session(client, alice):
    sign_in(client, "alice")

    response = client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("home")).status_code == 302


def test_it_does_not_sign_out_on_a_get_that_a_third_party_page_could_trigger(client, alice):
    sign_in(client, "alice")

    assert client.get(reverse("accounts:logout")).status_code == 405
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_it_locks_the_account_after_the_failure_limit_even_with_the_right_password(client, alice):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert sign_in(client, "alice", "wrong-password").status_code == 200

    locked = sign_in(client, "alice", "wrong-password")
    assert locked.status_code == 429
    assert "Account temporarily locked" in locked.content.decode()

    still_locked = sign_in(client, "alice")
    assert still_locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_it_locks_the_account_name_whatever_address_the_attempts_come_from(client, alice):
    for i in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            reverse("accounts:login"),
            {"username": "alice", "password": "wrong-password"},
            REMOTE_ADDR=f"10.0.0.{i + 1}",
        )

    response = client.post(
        reverse("accounts:login"), {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.9.9"
    )

    assert response.status_code == 429


def test_it_does_not_lock_other_accounts(client, alice, bob):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", "wrong-password")

    assert sign_in(client, "bob").status_code == 302


def test_it_unlocks_after_the_cool_off(client, alice, time_machine):
    time_machine.move_to("2026-03-02 09:00:00+00:00", tick=False)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", "wrong-password")
    assert sign_in(client, "alice").status_code == 429

    time_machine.shift(settings.AXES_COOLOFF_TIME + timedelta(minutes=1))

    assert sign_in(client, "alice").status_code == 302


def test_it_audits_success_failure_and_lockout_without_the_password(client, alice):
    sign_in(client, "alice")
    client.post(reverse("accounts:logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", "hunter2-wrong")

    events = list(AuditEvent.objects.order_by("id").values_list("action", "outcome", "actor_name", "object_id"))

    assert events[0] == ("login", "success", "alice", str(alice.pk))
    assert events[1] == ("logout", "success", "alice", str(alice.pk))
    failures = [e for e in events if e[:2] == ("login", "failure")]
    assert len(failures) == settings.AXES_FAILURE_LIMIT
    assert all(e[3] == "alice" for e in failures)
    assert ("login.locked_out", "denied", "", "alice") in events
    stored = AuditEvent.objects.values_list("detail", flat=True)
    assert not any("hunter2" in str(d) for d in stored)


def test_it_records_the_source_address_and_request_id_of_a_sign_in(client, alice):
    response = client.post(
        reverse("accounts:login"),
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="192.0.2.15",
        HTTP_X_REQUEST_ID="req-signin-1",
    )

    assert response["X-Request-ID"] == "req-signin-1"
    event = AuditEvent.objects.get(action="login")
    assert event.source_address == "192.0.2.15"
    assert event.request_id == "req-signin-1"
    assert event.role == "clinician"


def test_an_empty_form_says_what_is_missing_beside_each_field_and_above_the_form(client):
    page = sign_in(client, "", "").content.decode()

    assert "There is a problem" in page
    assert '<a href="#id_username">Username: This field is required.</a>' in page
    assert '<a href="#id_password">Password: This field is required.</a>' in page
    assert page.count('aria-invalid="true"') == 2
    assert 'id="id_username_error"' in page and 'id="id_password_error"' in page


def test_a_wrong_password_is_in_the_error_summary_and_the_username_is_kept(client, alice):
    page = sign_in(client, "alice", "not-her-password").content.decode()

    summary = page.split("data-error-summary>", 1)[1].split("</div>", 1)[0]
    assert "Please enter a correct username and password" in summary
    assert (
        '<input type="text" name="username" value="alice" autofocus autocapitalize="none" autocomplete="username"'
        in page
    )
    assert '<input type="password" name="password" autocomplete="current-password" required id="id_password">' in page
