"""The recent calls of each bank, for the admin service's bank-health view
(hub.admin): kept by `HubMetrics.health` (hub.telemetry.metrics), which records every
ListCards call. Carries bank codes, timings and reason tokens only."""

from __future__ import annotations

import collections
import statistics
import threading
from dataclasses import dataclass

RECENT_CALLS = 200
"""How many of a bank's latest calls the bank-health view summarises."""


@dataclass(frozen=True)
class BankHealthRow:
    """One bank's line in the admin service's bank-health view."""

    bank_code: str
    recent_calls: int
    success_rate: float
    """Share of the recent calls that reached a verdict (answered or
    rejected by contract), 0..1; 1.0 when there were no calls."""
    latency_p50: float
    latency_p99: float
    breaker_state: str
    in_flight: int
    last_error_reason: str


class BankHealth:
    """The recent calls of each bank (bounded), for the admin view. Written
    from the event loop, read from gRPC handlers on the same loop; the lock
    only guards against a scrape thread."""

    def __init__(self, size: int = RECENT_CALLS) -> None:
        self._size = size
        self._calls: dict[str, collections.deque[tuple[bool, float]]] = {}
        self._last_error: dict[str, str] = {}
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def record(self, bank: str, ok: bool, seconds: float, reason: str) -> None:
        with self._lock:
            self._calls.setdefault(bank, collections.deque(maxlen=self._size)).append((ok, seconds))
            if not ok:
                self._last_error[bank] = reason

    def begin(self, bank: str) -> None:
        with self._lock:
            self._in_flight[bank] += 1

    def end(self, bank: str) -> None:
        with self._lock:
            self._in_flight[bank] -= 1

    def in_flight(self, bank: str) -> int:
        with self._lock:
            return self._in_flight[bank]

    def row(self, bank: str, breaker_state: str) -> BankHealthRow:
        with self._lock:
            calls = list(self._calls.get(bank, ()))
            last_error = self._last_error.get(bank, "")
            in_flight = self._in_flight[bank]
        latencies = sorted(s for _, s in calls)
        return BankHealthRow(
            bank_code=bank,
            recent_calls=len(calls),
            success_rate=(sum(1 for ok, _ in calls if ok) / len(calls)) if calls else 1.0,
            latency_p50=_quantile(latencies, 0.50),
            latency_p99=_quantile(latencies, 0.99),
            breaker_state=breaker_state,
            in_flight=in_flight,
            last_error_reason=last_error,
        )


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[round(q * 100) - 1]
