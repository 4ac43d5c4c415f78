"""How long `verify_audit` takes per 100,000 audit events (target: under 5 s).

Runs against a throw-away test database (``test_<name>`` of DATABASE_URL, or
SQLite in memory), never against your data:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/commonpath .venv/bin/python bench/verify_audit.py [events]
"""

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

TARGET_SECONDS_PER_100K = 5.0


def build_chain(n: int) -> None:
    """Insert ``n`` realistic, correctly chained events in bulk (as audit_record would have)."""
    from accounts.audit import GENESIS, canonical_detail, event_digest
    from accounts.models import AuditEvent, User

    user = User.objects.create_user(username="bench-clinician")
    start = timezone.now() - timedelta(days=30)
    prev = GENESIS
    batch = []
    for i in range(n):
        event = AuditEvent(
            at=start + timedelta(seconds=i),
            actor_id=user.pk,
            actor_name=user.username,
            role="clinician",
            action=("episode.read", "variance.record", "variance.amend", "login")[i % 4],
            object_type="variances.variance",
            object_id=str(i),
            episode_ref=f"PT-{i % 5000:06d}",
            request_id=f"{i:032x}",
            source_address="10.1.2.3",
            detail=canonical_detail({"reason": "patient-contraindication", "fields": ["cause", "reason"], "n": i}),
            prev_hash=prev,
        )
        event.hash = event_digest(event)
        prev = event.hash
        batch.append(event)
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    from accounts.audit import verify_chain

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        build_chain(n)
        print(f"built {n:,} chained events in {time.perf_counter() - started:.1f} s ({connection.vendor})")
        started = time.perf_counter()
        count, bad, reason = verify_chain()
        seconds = time.perf_counter() - started
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    assert count == n and bad is None, (count, bad, reason)
    per_100k = seconds * 100_000 / n
    verdict = "OK" if per_100k < TARGET_SECONDS_PER_100K else "TOO SLOW"
    print(
        f"verify_audit: {count:,} events in {seconds:.2f} s = {per_100k:.2f} s per 100,000 events ({verdict}, target < {TARGET_SECONDS_PER_100K:.0f} s)"
    )
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
