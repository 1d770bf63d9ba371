"""The one exception the user's rules raise: a refusal with a reason.

`reason` is an ErrorReason name of the hub contract (e.g. "COOLDOWN_ACTIVE");
`metadata` carries the facts the contract promises for it (times as RFC 3339
UTC). The API layer maps the reason to a gRPC status code; nothing here knows
about gRPC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping


class RuleViolation(Exception):
    def __init__(self, reason: str, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})


def rfc3339(when: dt.datetime) -> str:
    """UTC, second precision, 'Z' suffix: the form error metadata uses."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def invalid(field: str, message: str) -> RuleViolation:
    return RuleViolation("INVALID_FIELD", message, {"field": field})
