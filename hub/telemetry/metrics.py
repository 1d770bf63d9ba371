"""Every metric of the hub, defined once (issue 11 item 1; docs/operations.md
says how to read them and which alerts to set).

One `HubMetrics` per hub process, on its own `CollectorRegistry` (not the
library's global one), so tests can run several hubs in one process and a
hub's exposition never mixes with anyone else's. The rest of the hub calls
small hooks on it at its boundaries:

- the fan-out (hub.fanout.retry): one `bank_attempt` per ListCards call, an
  in-flight gauge around it, one `bank_final` per finished bank task; the
  breaker state is read from the lanes when scraped;
- the store: `instrument_database` wraps the Database's read and write calls;
- the API: `ApiMetricsInterceptor` (hub.telemetry.api_metrics), a grpc.aio server
  interceptor, counts calls by method and status code and open WatchQuery
  streams (watch subscribers);
- SMS: `MeteredSmsSender` wraps the sender and counts by kind;
- the server's sweeper loop calls `refresh_store_gauges` (queries by state,
  age of the oldest stored report), read by the store's named queries
  (`QueryStore.gauges`): no SQL here.

Privacy (R14): labels carry only bank codes, state and reason tokens, method
names and status code names; never a query id, user id or anything about a
person (tests/hub/test_metrics.py scans the whole exposition during a real
journey). `BankHealth` (hub.telemetry.bank_health) keeps the recent calls of each
bank for the admin service's bank-health view (hub.admin).

Nothing here imports the fan-out: the breaker gauge reads a `BreakerSource`
that the fan-out registers (`watch_fanout`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cardlookup.metrics_http import BANK_LATENCY_BUCKETS
from cardlookup.metrics_http import MetricsEndpoint as MetricsEndpoint  # re-exported for hub.process.server
from hub.telemetry.bank_health import RECENT_CALLS, BankHealth, BankHealthRow

if TYPE_CHECKING:
    from hub.core.notify import SmsMessage, SmsSender
    from hub.store.db import Database
    from hub.store.queries import QueryStore

__all__ = ["RECENT_CALLS", "BankHealth", "BankHealthRow", "BreakerSource", "HubMetrics"]

T = TypeVar("T")

# No `<counter>_created` / `<histogram>_created` series: unit-less creation
# timestamps under the parent's help text that no dashboard or alert reads
# (issue 19). Process-wide in prometheus_client, set before any metric exists.
disable_created_metrics()

STORE_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
"""cardlookup_hub_bank_breaker_state: 0 closed, 1 half-open (one probe), 2 open."""


class BreakerSource(Protocol):
    """What the breaker gauge reads when scraped: the fan-out's lanes
    (hub.fanout.lanes.Fanout registers itself with `watch_fanout`)."""

    def breaker_states(self) -> dict[str, str]:
        """Bank code -> breaker state (closed, half_open, open)."""
        ...


class HubMetrics:
    """The hub's metrics on one private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.bank_call_seconds = Histogram(
            "cardlookup_hub_bank_call_seconds",
            "Duration of one ListCards call to a bank, stream included, by bank and result",
            ["bank", "result"],
            buckets=BANK_LATENCY_BUCKETS,
            registry=r,
        )
        self.bank_attempts = Counter(
            "cardlookup_hub_bank_attempts",
            "ListCards calls made to a bank (first tries and retries)",
            ["bank"],
            registry=r,
        )
        self.bank_retries = Counter(
            "cardlookup_hub_bank_retries",
            "Transient bank failures that will be retried, by bank and reason (a status code name)",
            ["bank", "reason"],
            registry=r,
        )
        self.bank_outcomes = Counter(
            "cardlookup_hub_bank_outcomes",
            "Final per-bank outcomes of queries, by bank, state (ANSWERED/REJECTED/NOT_ANSWERED) and reason",
            ["bank", "state", "reason"],
            registry=r,
        )
        self.bank_in_flight = Gauge(
            "cardlookup_hub_bank_in_flight", "ListCards calls in flight to a bank", ["bank"], registry=r
        )
        self.queries = Gauge("cardlookup_hub_queries", "Stored queries by state", ["state"], registry=r)
        self.oldest_report_age = Gauge(
            "cardlookup_hub_oldest_report_age_seconds",
            "Age of the oldest stored report (R11 deletes reports after 7 days; above that the sweeper is stuck)",
            registry=r,
        )
        self.watch_subscribers = Gauge("cardlookup_hub_watch_subscribers", "Open WatchQuery streams", registry=r)
        self.store_seconds = Histogram(
            "cardlookup_hub_store_operation_seconds",
            "Duration of store operations (write = queued until committed), by operation",
            ["operation"],
            buckets=STORE_LATENCY_BUCKETS,
            registry=r,
        )
        self.sms_sent = Counter("cardlookup_hub_sms_sent", "SMS handed to the gateway, by kind", ["kind"], registry=r)
        self.api_calls = Counter(
            "cardlookup_hub_api_calls", "Hub API calls by method and gRPC status code", ["method", "code"], registry=r
        )
        self.api_seconds = Histogram(
            "cardlookup_hub_api_call_seconds",
            "Duration of hub API calls by method (streams: until they end)",
            ["method"],
            registry=r,
        )
        self.oldest_pending_query_age = Gauge(
            "cardlookup_hub_oldest_pending_query_age_seconds",
            "Age of the oldest query not yet READY (R6: banks are given up after the 24 h report window)",
            registry=r,
        )
        self.store_write_failures = Counter(
            "cardlookup_hub_store_write_failures",
            "Store writes that failed (full disk, database refusing writes); each is retried or refused",
            registry=r,
        )
        self.store_writes_healthy = Gauge(
            "cardlookup_hub_store_writes_healthy",
            "1 while the store accepts writes, 0 while writes fail (the hub is then degraded: reads only)",
            registry=r,
        )
        self.store_writes_healthy.set(1)
        self.serving = Gauge(
            "cardlookup_hub_serving",
            "Health status this replica reports per health service name: 1 SERVING, 0 NOT_SERVING",
            ["service"],
            registry=r,
        )
        self.reloads = Counter(
            "cardlookup_hub_reloads",
            "Configuration reloads (SIGHUP or admin Reload), by result",
            ["result"],
            registry=r,
        )
        self.health = BankHealth()
        self.api_in_progress = 0
        """Hub API calls being served now (the admin Drain reports it)."""
        self._fanout: BreakerSource | None = None
        r.register(_BreakerCollector(self))

    # -- fan-out -------------------------------------------------------------

    def watch_fanout(self, fanout: BreakerSource) -> None:
        """The fan-out whose lanes' breakers are exported when scraped."""
        self._fanout = fanout

    def breaker_states(self) -> dict[str, str]:
        fanout = self._fanout
        return fanout.breaker_states() if fanout is not None else {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: labelled children are never
        removed, and `labels()` (a lock, a tuple, a dict) was a measurable
        share of a bank call's CPU at 256 banks (issue 16)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    @contextlib.contextmanager
    def bank_call(self, bank: str) -> Iterator[None]:
        """Around one ListCards call: the in-flight gauge."""
        gauge = self._child(self.bank_in_flight, bank)
        gauge.inc()
        self.health.begin(bank)
        try:
            yield
        finally:
            gauge.dec()
            self.health.end(bank)

    def bank_attempt(self, bank: str, result: str, reason: str, seconds: float) -> None:
        """result: answered | rejected | transient; reason: the transient
        reason (a status code name) or the rejection reason."""
        self._child(self.bank_attempts, bank).inc()
        self._child(self.bank_call_seconds, bank, result).observe(seconds)
        if result == "transient":
            self.bank_retries.labels(bank, reason).inc()
        self.health.record(bank, result != "transient", seconds, reason)

    def bank_final(self, bank: str, state: str, reason: str) -> None:
        self._child(self.bank_outcomes, bank, state, reason or "NONE").inc()

    # -- store ---------------------------------------------------------------

    def instrument_database(self, db: Database) -> None:
        """Times the database's reads and writes (wraps the instance's methods,
        so the store modules need no hooks)."""
        for name, operation in (
            ("write", "write"),
            ("execute", "write"),
            ("write_one", "write"),
            ("fetch_one", "read"),
            ("fetch_all", "read"),
            ("fetch_val", "read"),
        ):
            setattr(db, name, self._timed(getattr(db, name), operation))

    def _timed(self, fn: Callable[..., Awaitable[T]], operation: str) -> Callable[..., Awaitable[T]]:
        histogram = self.store_seconds.labels(operation)
        failures = self.store_write_failures if operation == "write" else None

        async def timed(*args: Any, **kwargs: Any) -> T:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            except Exception:
                if failures is not None:
                    failures.inc()
                raise
            finally:
                histogram.observe(time.perf_counter() - started)

        return timed

    async def refresh_store_gauges(self, queries: QueryStore, now_micros: int) -> None:
        """Queries by state and the oldest report's age, read from the store
        (the state that survives a replica lives there)."""
        gauges = await queries.gauges()
        for state, count in gauges.by_state.items():
            self.queries.labels(state).set(count)
        for state in ("ACCEPTED", "RUNNING", "READY", "EXPIRED"):
            if state not in gauges.by_state:
                self.queries.labels(state).set(0)
        for gauge, oldest in (
            (self.oldest_report_age, gauges.oldest_report),
            (self.oldest_pending_query_age, gauges.oldest_unfinished),
        ):
            gauge.set(0 if oldest is None else max(0.0, (now_micros - oldest) / 1_000_000))

    # -- SMS and exposition --------------------------------------------------

    def metered_sender(self, sender: SmsSender) -> SmsSender:
        return MeteredSmsSender(sender, self)

    def exposition(self) -> str:
        """The text format, as the HTTP endpoint serves it."""
        return generate_latest(self.registry).decode()


class MeteredSmsSender:
    """An SmsSender that counts what the wrapped sender accepted, by kind."""

    def __init__(self, inner: SmsSender, metrics: HubMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def send(self, message: SmsMessage) -> None:
        await self._inner.send(message)
        self._metrics.sms_sent.labels(message.kind).inc()


class _BreakerCollector(Collector):
    def __init__(self, metrics: HubMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "cardlookup_hub_bank_breaker_state",
            "Circuit breaker of each bank lane: 0 closed, 1 half-open, 2 open",
            labels=["bank"],
        )
        for bank, state in sorted(self._metrics.breaker_states().items()):
            family.add_metric([bank], BREAKER_VALUES.get(state, 0))
        yield family
