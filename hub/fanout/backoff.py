"""Exponential backoff with jitter for retrying a bank (R6)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hub.config import Timings


@dataclass(frozen=True)
class Backoff:
    initial: float
    """Seconds before the first retry (before jitter)."""
    maximum: float
    multiplier: float

    @classmethod
    def from_timings(cls, timings: Timings) -> Backoff:
        return cls(
            initial=timings.retry_initial.total_seconds(),
            maximum=timings.retry_max.total_seconds(),
            multiplier=timings.retry_multiplier,
        )

    def delay(self, failures: int, rng: random.Random, slow_down: bool = False) -> float:
        """Seconds to wait after the `failures`-th consecutive failure.

        "Equal jitter": half the exponential step is fixed, half random, so
        retries of many queries to one bank spread out instead of arriving
        together, and no retry comes sooner than half the step. A bank that
        asked us to slow down (RESOURCE_EXHAUSTED) gets twice the step."""
        exponent = max(0, failures - 1) + (1 if slow_down else 0)
        step = min(self.maximum, self.initial * self.multiplier**exponent)
        return step / 2 + rng.uniform(0, step / 2)
