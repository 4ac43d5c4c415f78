"""Bearer tokens: minted by create_api_token (secret printed last, stored hashed), expiring, revocable."""

from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEvent


def create_token(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_it_prints_a_working_token_as_the_last_line_and_stores_only_its_hash(sam):
    output, _ = create_token("sam-theatres", "--name", "theatre system")

    raw = output.strip().splitlines()[-1]
    assert raw.startswith("cp_")
    token = ApiToken.objects.get()
    assert token.digest == ApiToken.hash(raw)
    assert raw not in str(ApiToken.objects.values().get())
    assert "service account sam-theatres" in output
    assert bearer(raw).get("/api/v1/org-units/").json()["results"][0]["code"] == "ORTHO"
    assert AuditEvent.objects.filter(action="api_token.create", object_id=str(token.pk)).exists()


def test_it_makes_tokens_that_expire(alice):
    with time_machine.travel("2025-06-01 09:00Z", tick=False):
        output, _ = create_token("alice", "--expires-days", "30")
    raw = output.strip().splitlines()[-1]
    assert "expires 2025-07-01 09:00 UTC" in output

    with time_machine.travel("2025-06-30 09:00Z", tick=False):
        assert bearer(raw).get("/api/v1/org-units/").status_code == 200
    with time_machine.travel("2025-07-01 09:01Z", tick=False):
        response = bearer(raw).get("/api/v1/org-units/")
        assert response.status_code == 401
        assert response.json()["detail"] == "The token is unknown, expired or revoked."


def test_it_refuses_unknown_users_and_nonsense_expiry(alice):
    with pytest.raises(CommandError, match="No user called 'zoe'"):
        create_token("zoe")
    with pytest.raises(CommandError):
        create_token("alice", "--expires-days", "0")
    assert ApiToken.objects.count() == 0


def test_it_warns_when_the_user_holds_no_role(nobody):
    output, err = create_token("nobody")

    assert "holds no role" in err
    assert bearer(output.strip().splitlines()[-1]).get("/api/v1/org-units/").status_code == 403


def test_it_lists_and_revokes_the_callers_own_tokens(sam, alice, token_for):
    raw = token_for(sam, name="theatre system")
    spare = token_for(sam, name="spare")
    token_for(alice)
    client = bearer(raw)

    listed = client.get("/api/v1/tokens/").json()
    assert listed["count"] == 2
    assert {t["name"] for t in listed["results"]} == {"theatre system", "spare"}
    assert all(raw not in str(t) for t in listed["results"])

    spare_id = ApiToken.objects.get(digest=ApiToken.hash(spare)).pk
    revoked = client.post(f"/api/v1/tokens/{spare_id}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["usable"] is False
    assert bearer(spare).get("/api/v1/org-units/").status_code == 401
    alices = ApiToken.objects.get(user=alice).pk
    assert client.post(f"/api/v1/tokens/{alices}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=alices).revoked_at is None


def test_it_stops_accepting_tokens_of_deactivated_accounts(sam, token_for):
    raw = token_for(sam)
    sam.is_active = False
    sam.save()

    assert bearer(raw).get("/api/v1/org-units/").status_code == 401


def test_it_records_when_a_token_was_last_used(sam, token_for):
    raw = token_for(sam)

    bearer(raw).get("/api/v1/org-units/")

    assert ApiToken.objects.get().last_used_at is not None
    assert ApiToken.objects.get().last_used_at <= timezone.now()


def test_it_lets_an_admin_revoke_tokens_from_the_admin_list(client, erin, sam, token_for):
    raw = token_for(sam)
    token = ApiToken.objects.get(user=sam)
    client.force_login(erin, backend="django.contrib.auth.backends.ModelBackend")

    listing = client.get("/admin/accounts/apitoken/")
    assert token.prefix in listing.content.decode()
    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    assert ApiToken.objects.get().revoked_at is not None
    assert AuditEvent.objects.get(action="api_token.revoke").actor_name == "erin"
    assert bearer(raw).get("/api/v1/org-units/").status_code == 401


def test_it_lists_tokens_in_a_fixed_number_of_queries(sam, token_for, django_assert_max_num_queries):
    raw = token_for(sam)
    for n in range(5):
        token_for(sam, name=f"spare {n}")
    client = bearer(raw)

    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/tokens/").json()["count"] == 6
