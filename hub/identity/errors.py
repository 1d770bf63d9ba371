"""The one exception the user's rules raise: a refusal with a reason.

`reason` is an ErrorReason name of the hub contract (e.g. "COOLDOWN_ACTIVE");
`metadata` carries the facts the contract promises for it (times as RFC 3339
UTC); `retry_delay`, when set, is the time from the refusal to its
`retry_time` (sent as google.rpc.RetryInfo). The API layer maps the reason to
a gRPC status code; nothing here knows about gRPC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping


class RuleViolation(Exception):
    def __init__(
        self,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        retry_delay: dt.timedelta | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.retry_delay = retry_delay


def ceil_second(when: dt.datetime) -> dt.datetime:
    """`when` rounded up to a whole second."""
    if when.microsecond:
        return when.replace(microsecond=0) + dt.timedelta(seconds=1)
    return when


def delay_until(when: dt.datetime, now: dt.datetime) -> dt.timedelta:
    """From `now` to `when` as error metadata states it (rounded up to a
    whole second), never negative: RetryInfo.retry_delay for a retry_time."""
    return max(ceil_second(when) - now, dt.timedelta(0))


def rfc3339(when: dt.datetime) -> str:
    """UTC, second precision, 'Z' suffix: the form error metadata uses.
    Rounded up, never truncated: a client that retries at a retry_time it
    was given must not be refused again for the lost fraction of a second."""
    return ceil_second(when).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_text(span: dt.timedelta) -> str:
    """A configured duration in words for messages: "7 days", "36 hours"."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def invalid(field: str, message: str) -> RuleViolation:
    return RuleViolation("INVALID_FIELD", message, {"field": field})
