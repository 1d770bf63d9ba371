"""The deadline of the API call being served, for code below the API layer
that queues for a scarce resource (hub.identity.passwords) and must not
wait past the point where its caller has given up.

The API interceptor (hub.api.interceptors) sets it for each unary call;
nothing else writes it. A context variable, so each call's task sees its
own value.
"""

from __future__ import annotations

import contextvars

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("hub_call_deadline", default=None)


def deadline() -> float | None:
    """The event loop time (`loop.time()`) when the current call's time runs
    out, or None outside an API call."""
    return _deadline.get()


def set_deadline(when: float | None) -> None:
    _deadline.set(when)
