"""A per-bank circuit breaker: a sick bank gets less traffic.

Closed: calls flow; `failure_threshold` consecutive transient failures open
it. Open: no calls for `reset_after` seconds. Then half-open: exactly one
probe call goes through; its success closes the breaker, its failure opens
it again. Time is a monotonic function (real seconds): this is an
operational rule, not a product rule, and tests pass their own function.

The breaker is the bank lane owner's own (issue 16): one replica calls a
bank, so its breaker alone decides for the whole service, with nothing
shared through the store.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int, reset_after: float, now: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._threshold = failure_threshold
        self._reset_after = reset_after
        self._now = now
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.times_opened = 0

    def open_for(self) -> float:
        """Seconds until a probe may go (0.0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._reset_after - (self._now() - self._opened_at))

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._now() - self._opened_at < self._reset_after:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def before_call(self) -> float:
        """0.0 if a call may go now (the caller must then report its end),
        else the seconds to wait before asking again."""
        state = self.state
        if state is BreakerState.CLOSED:
            return 0.0
        if state is BreakerState.OPEN:
            assert self._opened_at is not None
            return max(0.001, self._reset_after - (self._now() - self._opened_at))
        if self._probe_in_flight:
            return max(0.001, min(1.0, self._reset_after))
        self._probe_in_flight = True
        return 0.0

    def on_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def on_failure(self) -> None:
        self._failures += 1
        was_probe = self._probe_in_flight
        self._probe_in_flight = False
        if was_probe or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = self._now()
            self.times_opened += 1

    def on_abandon(self) -> None:
        """The call ended without a verdict (cancelled): free the probe slot."""
        self._probe_in_flight = False
