"""Serving Prometheus metrics, shared by the hub and the bank simulator:
the HTTP endpoint Prometheus scrapes (`MetricsEndpoint`) and the bank
simulator's metrics (`BankSimMetrics`, bank_sim.fleet `[fleet]
metrics_port`). The hub's own metrics are hub.telemetry.metrics; this module sits in
the shared kernel so bank_sim imports nothing of the hub.

Counters and histograms carry no `_created` series (set here, on import,
for every process that serves metrics; hub.telemetry.metrics sets it too).
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer

from cardlookup.rpc_errors import status_code_name

disable_created_metrics()

BANK_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
"""Buckets of every bank-call duration histogram (the hub's and the simulator's)."""


class MetricsEndpoint:
    """The HTTP endpoint Prometheus scrapes (`metrics_listen`, host:port;
    plaintext, like the health port: bind it to an internal address).
    prometheus_client's WSGI app on its threading server, as
    `start_http_server` builds it, but polling for shutdown every 50 ms
    instead of 500 ms: closing it is part of a hub's stop (issue 19)."""

    def __init__(self, registry: CollectorRegistry, address: str) -> None:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]

        class Server(ThreadingWSGIServer):
            address_family = family

        self._server = make_server(host, int(port), make_wsgi_app(registry), Server, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="metrics-endpoint", daemon=True
        )
        self._thread.start()
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (the hub's log is JSON only)."""


class BankSimMetrics:
    """The bank simulator's metrics (bank_sim.fleet, `[fleet] metrics_port`):
    what each simulated bank was asked and answered, for load tests and
    demos."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "cardlookup_banksim_calls",
            "Calls to a simulated bank by bank, method and gRPC status code",
            ["bank", "method", "code"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "cardlookup_banksim_call_seconds",
            "Duration of calls to a simulated bank (streams: until they end)",
            ["bank"],
            buckets=BANK_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "cardlookup_banksim_in_flight", "Calls in progress at a simulated bank", ["bank"], registry=r
        )

    def interceptor(self, bank: str) -> grpc.aio.ServerInterceptor:
        return _BankSimInterceptor(self, bank)

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()


class _BankSimInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: BankSimMetrics, bank: str) -> None:
        self._metrics = metrics
        self._bank = bank

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler: Any = await continuation(handler_call_details)
        # Bank calls stream from async generators; a streaming handler that
        # writes with context.write (health Watch, which a hub's round_robin
        # health checking calls) is not a bank call and passes unwrapped.
        if handler is None or handler.unary_stream is None or not inspect.isasyncgenfunction(handler.unary_stream):
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1] or "unknown"
        metrics, bank, inner = self._metrics, self._bank, handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            metrics.in_flight.labels(bank).inc()
            error: BaseException | None = None
            try:
                async for response in inner(request, context):
                    yield response
            except BaseException as raised:
                error = raised
                raise
            finally:
                metrics.in_flight.labels(bank).dec()
                metrics.calls.labels(bank, method, status_code_name(context, error)).inc()
                metrics.call_seconds.labels(bank).observe(time.perf_counter() - started)

        return handler._replace(unary_stream=unary_stream)
