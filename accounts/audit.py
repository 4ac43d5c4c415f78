"""The audit trail: one call, ``audit_record``, in the same transaction as the change.

Each event carries the SHA-256 of its own content and of the previous event, so
that altering, deleting or reordering a row breaks the chain
(``manage.py verify_audit`` finds the first bad event). Writers are serialised
with a transaction-scoped advisory lock on PostgreSQL; SQLite serialises writes
by itself.
"""

import contextvars
import hashlib
import json

from django.db import connection, transaction

from .context import current_request_context
from .models import AuditEvent, OrgUnit
from .permissions import primary_role

GENESIS = "0" * 64
_LOCK_KEY = 0x436F6D50  # "ComP": any constant shared by every writer


class _DenialTally:
    """How many denials the current request has audited (mutable, so nested contexts share it)."""

    __slots__ = ("count",)

    def __init__(self):
        self.count = 0


_denials: contextvars.ContextVar[_DenialTally | None] = contextvars.ContextVar("commonpath_denials", default=None)


def start_denial_tally() -> tuple[_DenialTally, contextvars.Token]:
    """Begin counting audited denials for one request (``RequestIdMiddleware``)."""
    tally = _DenialTally()
    return tally, _denials.set(tally)


def end_denial_tally(token: contextvars.Token) -> None:
    _denials.reset(token)


# The hashed content of an event, in this order (the id and the hash itself are not part of it).
DIGEST_FIELDS = (
    "at",
    "actor_id",
    "actor_name",
    "role",
    "action",
    "object_type",
    "object_id",
    "episode_ref",
    "org_unit_id",
    "request_id",
    "source_address",
    "outcome",
    "detail",
    "prev_hash",
)
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def _digest(values) -> str:
    at, actor_id, actor_name, role, action, object_type, object_id, *rest = values
    payload = _dumps([at.isoformat(), actor_id, actor_name, role, action, object_type, str(object_id), *rest])
    return hashlib.sha256(payload.encode()).hexdigest()


def event_digest(event: AuditEvent) -> str:
    return _digest([getattr(event, name) for name in DIGEST_FIELDS])


def _clean_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; an event must never fail to be written because of its content.
    return value.replace("\x00", "\ufffd")


def canonical_detail(value):
    """``value`` as plain JSON that reads back from the database exactly as written.

    Floats become their ``repr`` text: PostgreSQL's jsonb rewrites ``1e+16`` as
    ``10000000000000000``, which would change the event's hash and raise a false
    tampering alarm. Decimals, dates and other objects become text too.
    """
    if isinstance(value, dict):
        return {_clean_text(str(k)): canonical_detail(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical_detail(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _clean_text(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _clean_text(str(value))


def _unit_id_of(obj) -> int | None:
    if obj is None:
        return None
    if isinstance(obj, OrgUnit):
        return obj.pk
    for attname in ("org_unit_id", "owner_unit_id"):
        unit_id = getattr(obj, attname, None)
        if unit_id is not None:
            return unit_id
    if getattr(obj, "episode_id", None) is not None:
        return obj.episode.org_unit_id
    return None


def audit_record(
    *,
    action: str,
    actor=None,
    obj=None,
    object_type: str = "",
    object_id: str = "",
    episode_ref: str = "",
    outcome: str = AuditEvent.Outcome.SUCCESS,
    role: str = "",
    org_unit=None,
    detail: dict | None = None,
) -> AuditEvent:
    """Append one audit event. Call inside the transaction of the change it records.

    ``org_unit`` defaults to the unit ``obj`` belongs to (its ``org_unit``, its
    ``owner_unit`` or its episode's unit): it decides which clinical leads may
    read the event in the audit reports.
    """
    ctx = current_request_context()
    if actor is None:
        actor = ctx.user
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    org_unit_id = org_unit.pk if org_unit is not None else _unit_id_of(obj)
    if actor is not None and not role:
        # The role the actor acts in: the most senior they hold (callers may be more precise).
        role = primary_role(actor) or ""
    event = AuditEvent(
        actor=actor,
        actor_name=actor.username if actor else "",
        role=role,
        action=action,
        object_type=object_type,
        object_id=_clean_text(str(object_id))[:64],
        episode_ref=_clean_text(episode_ref)[:64],
        org_unit_id=org_unit_id,
        request_id=ctx.request_id,
        source_address=ctx.address,
        outcome=outcome,
        detail=canonical_detail(detail or {}),
    )
    # Inside the change's transaction, no savepoint of its own: if the audit event cannot be
    # written, the change must not be either.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event.prev_hash = last or GENESIS
        event.hash = event_digest(event)
        event.save(force_insert=True)
    if outcome == AuditEvent.Outcome.DENIED:
        tally = _denials.get()
        if tally is not None:
            tally.count += 1
    return event


def latest_anchor() -> tuple[int, str] | None:
    """The chain's end as the latest passed ``AuditCheck`` saw it (id, hash), if any."""
    from .models import AuditCheck

    row = (
        AuditCheck.objects.filter(status=AuditCheck.Status.PASSED, last_event_id__isnull=False)
        .order_by("-finished_at", "-id")
        .values_list("last_event_id", "last_hash")
        .first()
    )
    return tuple(row) if row else None


def verify_chain(batch_size: int = 5000, *, anchor: tuple[int, str] | None = None):
    """Return ``(count, first_bad_event_or_None, reason)`` walking the chain in id order.

    ``anchor`` (an event id and hash an earlier check saw as the end of the chain)
    must still be in the chain, unchanged: truncating the newest events leaves a
    chain that is valid in itself, and only such a remembered end reveals it.
    Reads plain tuples rather than model instances: it has to stay well under
    5 seconds per 100,000 events (``bench/verify_audit.py``).
    """
    prev = GENESIS
    count = 0
    anchor_seen = anchor is None
    rows = AuditEvent.objects.order_by("id").values_list("id", "hash", *DIGEST_FIELDS)
    for row in rows.iterator(chunk_size=batch_size):
        count += 1
        event_id, stored_hash, values = row[0], row[1], row[2:]
        if values[-1] != prev:
            return (
                count,
                AuditEvent.objects.get(pk=event_id),
                ("its previous-hash does not match the event before it (deleted or reordered)"),
            )
        if _digest(values) != stored_hash:
            return count, AuditEvent.objects.get(pk=event_id), "its content does not match its hash (altered)"
        if not anchor_seen and event_id == anchor[0]:
            anchor_seen = stored_hash == anchor[1]
        prev = stored_hash
    if not anchor_seen:
        # An unsaved stand-in: the event itself is gone (or no longer the one that was verified).
        missing = AuditEvent(pk=anchor[0], hash=anchor[1])
        return (
            count + 1,
            missing,
            (
                "it was the last event of an earlier passed check and is missing or different now "
                "(the newest events were deleted or the chain rewritten)"
            ),
        )
    return count, None, ""
