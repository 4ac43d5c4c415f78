"""Per-request facts (request id, address, user) that logs and the audit trail read.

Held in a ContextVar so that services called from views, the API or Celery tasks
need not pass the request down.
"""

import contextvars
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    address: str | None = None
    user: object | None = None


_EMPTY = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("commonpath_request", default=None)


def current_request_context() -> RequestContext:
    return _current.get() or _EMPTY


def set_request_context(ctx: RequestContext):
    return _current.set(ctx)


def reset_request_context(token) -> None:
    _current.reset(token)


def new_request_id() -> str:
    return uuid.uuid4().hex
