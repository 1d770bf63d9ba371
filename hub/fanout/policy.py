"""`BankCallPolicy`: every number a call to a bank obeys, in one value
(temporalio's `RetryPolicy` is the model).

Every bank call reads its deadline, retries, backoff, breaker and waits
from one policy, built from `[timings]` by `BankCallPolicy.from_timings`
and validated once, when it is made: the per-call ListCards path and its
retry loop (hub.fanout.caller, retry, backoff, breaker, channels), the
session stream (hub.fanout.session), the "not my card" case calls
(hub.fanout.cases), and a lane handover (hub.engine.lanes). The fields,
their defaults and the `[timings]` key that sets each are the table in
docs/hub-engine.md ("The bank-call policy"); a test keeps the two equal.

A bank task has no attempt limit of its own: it is retried until the
query's report window closes (R6, `timings.report_window`), or rejected.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from hub.core.backoff import Backoff
from hub.core.config import Timings

TIMING_KEYS: dict[str, str] = {
    "attempt_timeout": "timings.attempt_timeout",
    "case_timeout": "timings.attempt_timeout",
    "channel_grace": "timings.attempt_timeout",
    "handover_wait": "timings.attempt_timeout",
    "connect_timeout": "timings.attempt_timeout",
    "initial_backoff": "timings.retry_initial",
    "max_backoff": "timings.retry_max",
    "backoff_multiplier": "timings.retry_multiplier",
    "breaker_failures": "timings.breaker_failures",
    "breaker_reset": "timings.breaker_reset",
}
"""The `[timings]` key each field is built from; fields not named here are
fixed (their default)."""
HANDOVER_MARGIN = 1.0
"""Seconds a lane handover waits beyond a call's deadline, for its outcome's commit."""


@dataclass(frozen=True)
class BankCallPolicy:
    attempt_timeout: float = 20.0
    """Deadline of one attempt (seconds): a ListCards call with its whole
    stream, or one exchange of the session stream."""
    case_timeout: float = 20.0
    """Deadline of one OpenCardCase call (the user is waiting; not retried)."""
    channel_grace: float = 20.0
    """How long a retired channel (re-addressed bank, new client
    certificate) lets the calls already on it finish before it closes."""
    handover_wait: float = 21.0
    """How long a lane handover waits for the calls in flight in the lane
    (and their outcomes' commit) before cancelling them: a call's deadline
    and a margin."""
    connect_timeout: float = 20.0
    """How long grpc may take to set up a connection to a bank (TCP, the TLS
    handshake) before the calls waiting for it fail UNAVAILABLE: an
    attempt's deadline (grpc's `min_reconnect_backoff_ms`, which is its
    minimum connect timeout, not a backoff). Shorter, a slow link or a
    loaded machine fails calls that never reached the bank."""
    initial_backoff: float = 1.0
    """Backoff step after the first transient failure (seconds)."""
    max_backoff: float = 600.0
    """Largest backoff step."""
    backoff_multiplier: float = 2.0
    """Growth of the step per consecutive failure."""
    jitter: float = 0.5
    """Share of a step that is random: the wait is step × (1 − jitter) +
    uniform(0, step × jitter) ("equal jitter" at 0.5)."""
    slow_down_factor: float = 2.0
    """A bank that answered RESOURCE_EXHAUSTED gets its next step multiplied by this."""
    breaker_failures: int = 5
    """Consecutive transient failures that open a bank's circuit breaker."""
    breaker_reset: float = 30.0
    """How long an open breaker waits before one probe call goes through."""
    identity_failures: int = 3
    """Consecutive handshakes failing the bank-name check before the bank is
    REJECTED as WRONG_BANK_CERTIFICATE (one may be a rotation glitch)."""
    session_reprobe: float = 600.0
    """After a bank answered the session stream UNIMPLEMENTED (mode auto),
    how long it is called per call before the session is tried again."""
    session_cooloff: float = 60.0
    """After a protocol violation on a session stream, how long the bank is
    called per call before a new stream opens."""

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    @classmethod
    def from_timings(cls, timings: Timings) -> BankCallPolicy:
        """The policy the hub's `[timings]` set (the other fields: defaults)."""
        attempt = timings.attempt_timeout.total_seconds()
        return cls(
            attempt_timeout=attempt,
            case_timeout=attempt,
            channel_grace=attempt,
            handover_wait=attempt + HANDOVER_MARGIN,
            connect_timeout=attempt,
            initial_backoff=timings.retry_initial.total_seconds(),
            max_backoff=timings.retry_max.total_seconds(),
            backoff_multiplier=timings.retry_multiplier,
            breaker_failures=timings.breaker_failures,
            breaker_reset=timings.breaker_reset.total_seconds(),
        )

    def problem(self) -> str:
        """The first bad value as one line naming the field (and the
        `[timings]` key that sets it), or "" if the policy is usable."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return self._bad(f.name, "must be a finite number")
        positive = (
            "attempt_timeout",
            "case_timeout",
            "connect_timeout",
            "initial_backoff",
            "breaker_reset",
            "session_reprobe",
            "session_cooloff",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                return self._bad(name, "must be positive")
        if self.channel_grace < 0:
            return self._bad("channel_grace", "must not be negative")
        if self.handover_wait < self.attempt_timeout:
            return self._bad("handover_wait", "must be at least attempt_timeout (a call in flight may end)")
        if self.max_backoff < self.initial_backoff:
            return self._bad("max_backoff", "must be at least initial_backoff")
        for name in ("backoff_multiplier", "slow_down_factor"):
            if getattr(self, name) < 1:
                return self._bad(name, "must be at least 1")
        if not 0 <= self.jitter <= 1:
            return self._bad("jitter", "must be between 0 and 1")
        for name in ("breaker_failures", "identity_failures"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                return self._bad(name, "must be an integer of at least 1")
        return ""

    def _bad(self, name: str, problem: str) -> str:
        key = TIMING_KEYS.get(name)
        where = f"{name} ({key})" if key else name
        return f"bank call policy: {where}: {problem}, got {getattr(self, name)!r}"

    @property
    def backoff(self) -> Backoff:
        """The waits between attempts of one bank task."""
        return Backoff(
            initial=self.initial_backoff,
            maximum=self.max_backoff,
            multiplier=self.backoff_multiplier,
            jitter=self.jitter,
            slow_down=self.slow_down_factor,
        )
