"""`manage.py verify_audit` names the first event that was altered, deleted or reordered.

The database refuses UPDATE and DELETE on the audit table, so each test first
does what an attacker with the database owner's rights would do: switch the
append-only trigger off (as superuser), change the rows, switch it back on.
"""

from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.audit import audit_record, verify_chain
from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table


@contextmanager
def tampering():
    """Lift the append-only guard for the duration (what only a database superuser can do)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Foreign-key checks of this test's inserts are deferred; ALTER TABLE needs them done.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TABLE}_append_only")
            yield cursor
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TABLE}_append_only")
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = %s", [f"{TABLE}_no_update"])
            (trigger_sql,) = cursor.fetchone()
            cursor.execute(f"DROP TRIGGER {TABLE}_no_update")
            yield cursor
            cursor.execute(trigger_sql)


@pytest.fixture
def events(alice):
    """Five events by alice: the chain to tamper with."""
    return [
        audit_record(action=f"variance.record.{i}", actor=alice, object_type="variances.variance", object_id=str(i))
        for i in range(1, 6)
    ]


def verify() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def verify_fails() -> str:
    with pytest.raises(CommandError) as failure:
        verify()
    assert failure.value.returncode == 1
    return str(failure.value)


def test_it_reports_an_intact_chain_with_its_length(events):
    assert "Audit chain intact: 5 events verified" in verify()


def test_it_names_an_altered_event(events):
    with tampering() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET object_id = %s WHERE id = %s", ["999", events[2].pk])

    message = verify_fails()

    assert f"Audit chain broken at event {events[2].pk}" in message
    assert "action 'variance.record.3'" in message
    assert "its content does not match its hash (altered)" in message


def test_it_names_an_event_whose_actor_was_rewritten(events, bob):
    with tampering() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET actor_id = %s, actor_name = 'bob' WHERE id = %s", [bob.pk, events[1].pk])

    assert f"Audit chain broken at event {events[1].pk}" in verify_fails()


def test_it_names_the_event_after_a_deleted_one(events):
    with tampering() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [events[1].pk])

    message = verify_fails()

    assert f"Audit chain broken at event {events[2].pk}" in message
    assert "the 2nd event checked" in message
    assert "deleted or reordered" in message


def test_it_names_the_first_of_two_reordered_events(events):
    a, b = events[1].pk, events[2].pk
    with tampering() as cursor:
        # Swap the two rows' places in the chain: each row keeps its content and hash, under the other's id.
        cursor.execute(f"UPDATE {TABLE} SET id = -1 WHERE id = %s", [a])
        cursor.execute(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [a, b])
        cursor.execute(f"UPDATE {TABLE} SET id = %s WHERE id = -1", [b])

    message = verify_fails()

    assert f"Audit chain broken at event {a}" in message
    assert "action 'variance.record.3'" in message
    assert "deleted or reordered" in message


def test_it_names_a_forged_event_inserted_with_a_made_up_hash(events):
    last = events[-1]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (at, actor_name, role, action, object_type, object_id, episode_ref, request_id, "
            "outcome, detail, prev_hash, hash) "
            "VALUES (%s, 'mallory', '', 'login', '', '', '', '', 'success', '{}', %s, %s)",
            [last.at, last.hash, "f" * 64],
        )

    message = verify_fails()

    assert "by mallory" in message
    assert "(altered)" in message


def test_it_verifies_every_kind_of_event_content_after_a_round_trip(alice, org):
    """What the database hands back must hash exactly as what was written (no false alarms)."""
    audit_record(
        action="variance.amend",
        actor=alice,
        object_type="variances.variance",
        object_id="42",
        episode_ref="EP-7Q4K-2026",
        org_unit=org["ORTHO"],
        detail={
            "reason": "patient-contraindication",
            "fields": ["cause", "rationale_changed"],
            "cost": "125.50",
            "minutes": 90,
            "ratio": 0.1,
            "nested": {"ok": True, "none": None, "unicode": "Œdème – café"},
        },
    )

    assert "Audit chain intact: 1 events verified" in verify()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(detail=st.dictionaries(st.text(max_size=8), json_values, max_size=4), object_id=st.text(max_size=80))
def test_it_never_raises_a_false_alarm_whatever_the_detail_holds(db, detail, object_id):
    """Large floats (jsonb rewrites 1e+16), NUL characters and odd keys must not break the chain."""
    event = audit_record(action="fuzz", object_type="test", object_id=object_id, detail=detail)

    count, bad, reason = verify_chain()

    assert bad is None, (event.detail, reason)


@pytest.mark.slow
def test_it_verifies_at_better_than_five_seconds_per_hundred_thousand_events(db):
    """A fifth of the benchmark (bench/verify_audit.py runs the full 100,000)."""
    import time

    from bench.verify_audit import build_chain

    build_chain(20_000)

    # CPU time of this process, not wall time: the suite shares two cores with other work, and
    # hashing here is the cost that grows with the trail (bench/verify_audit.py measures wall time).
    started = time.process_time()
    count, bad, _ = verify_chain()
    seconds = time.process_time() - started

    assert (count, bad) == (20_000, None)
    assert seconds < 1.0, f"{seconds:.2f} s of CPU for 20,000 events is {seconds * 5:.1f} s per 100,000"


def test_it_notices_the_newest_events_deleted_after_a_passed_check(events, django_capture_on_commit_callbacks):
    from accounts.models import AuditCheck
    from accounts.services import audit_check_request

    with django_capture_on_commit_callbacks(execute=True):
        check = audit_check_request()
    check.refresh_from_db()
    assert check.status == AuditCheck.Status.PASSED
    newest = AuditEvent.objects.order_by("-id").first()  # the request for the check itself
    assert check.last_event_id == newest.pk

    with tampering() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id >= %s", [events[3].pk])

    message = verify_fails()
    assert f"Audit chain broken at event {newest.pk}: it was the last event of an earlier passed check" in message
    # The chain up to the deletion is valid in itself: only the remembered end reveals it.
    assert "intact: 3 events" in verify_no_anchor()


def verify_no_anchor() -> str:
    out = StringIO()
    call_command("verify_audit", "--no-anchor", stdout=out)
    return out.getvalue()
