"""Exponential backoff with jitter, one small pure value: the waits between
retries of a bank (R6; `BankCallPolicy.backoff`, hub.fanout.policy), of a
failing store write (hub.engine.batches), of a PostgreSQL transaction that
hit a serialization failure or a deadlock (hub.store.postgres), and of
re-listening after the listening connection was lost (hub.store.pg_listen).
It sits in hub/core so that every layer uses this one implementation."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial: float
    """Seconds of the first step (before jitter)."""
    maximum: float
    """The largest step."""
    multiplier: float
    """Growth of the step per consecutive failure."""
    jitter: float = 0.5
    """Share of a step that is random (0: none)."""
    slow_down: float = 2.0
    """Factor of the step after a failure that asked to slow down."""

    def step(self, failures: int, slow_down: bool = False) -> float:
        """The step after the `failures`-th consecutive failure (no jitter)."""
        step = self.initial * self.multiplier ** max(0, failures - 1)
        if slow_down:
            step *= self.slow_down
        return min(self.maximum, step)

    def delay(self, failures: int, rng: random.Random | None = None, slow_down: bool = False) -> float:
        """Seconds to wait after the `failures`-th consecutive failure.

        With the default jitter ("equal jitter") half the step is fixed and
        half random, so retries of many queries to one bank spread out
        instead of arriving together, and no retry comes sooner than half
        the step. A bank that asked us to slow down (RESOURCE_EXHAUSTED)
        gets a `slow_down` times longer step."""
        step = self.step(failures, slow_down)
        if self.jitter <= 0:
            return step
        fixed = step * (1 - self.jitter)
        uniform = rng.uniform if rng is not None else random.uniform
        return fixed + uniform(0, step - fixed)
