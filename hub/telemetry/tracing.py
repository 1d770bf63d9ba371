"""OpenTelemetry tracing of the hub (issue 19 item 5), in one module; the rest
of the hub calls small hooks:

- `ServerTracing`, a grpc.aio server interceptor (hub.process.server): one SERVER
  span per API call, a child of the app backend's span when its call carries
  a W3C `traceparent` (the client injects one, client.tracing);
- `traced_attempt` (decorates hub.fanout.caller.attempt): one CLIENT span
  per ListCards call, and `outgoing_metadata()`, the `traceparent` (and
  `tracestate`) sent to the bank with it, so the bank can log which hub call
  a line belongs to (docs/bank-integration.md);
- `instrument_database(db)` (hub.process.server): one span per store write (a write
  is queued and committed in a batch; the span covers both);
- `traced_query("query.ready")` (decorates the engine's completion):
  building, sealing and storing the report.

Bank tasks are asyncio tasks created inside the API call, so they inherit
its context: one trace holds the app backend's call, the hub's span, every
bank attempt (retries included) and READY.

Off by default: with `[tracing] enabled = false` (hub.core.config) nothing is
installed and the API's no-op tracer makes every hook free; with it on, the
spans go to an OTLP/gRPC collector (`otlp_endpoint`). `use_provider` lets a
test (or an embedding program) supply its own TracerProvider.

opentelemetry-instrumentation-grpc is not used: its server interceptor
would trace health and reflection calls too and name attributes its own
way, and its client side patches channels globally; the hub needs one span
per bank attempt with the bank code and outcome, and control over every
attribute (below). Propagation is the API's (W3C trace context).

Privacy (R14): attributes carry only method names, status code names, bank
codes, the query id (a random UUID), attempt numbers and counts; never a
name, ID number, phone or card (tests/api/test_tracing.py scans every
attribute of a real journey's spans).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider

from cardlookup.rpc_errors import status_code_name

if TYPE_CHECKING:
    from hub.core.config import TracingSettings
    from hub.store.db import Database

T = TypeVar("T")
TRACER_NAME = "cardlookup.hub"
_provider: TracerProvider | None = None
_owned: Any = None
"""The SDK provider `configure` built (shut down, and so flushed, on stop)."""


def use_provider(provider: TracerProvider | None) -> None:
    """Spans go to `provider` from now on (None: back to the no-op)."""
    global _provider
    _provider = provider


def tracer() -> Tracer:
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer(TRACER_NAME)


def configure(settings: TracingSettings) -> None:
    """With `settings.enabled`, installs an SDK provider exporting over
    OTLP/gRPC (batched); otherwise leaves the current one (by default none)."""
    global _owned
    if not settings.enabled:
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = SdkProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    _owned = provider
    use_provider(provider)


def shutdown() -> None:
    """Flushes and stops the provider `configure` installed, if any."""
    global _owned
    if _owned is not None:
        _owned.shutdown()
        if _provider is _owned:
            use_provider(None)
        _owned = None


def current_trace_id() -> str:
    """The current span's trace id (32 hex digits), "" outside any span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[trace.Span]:
    """An internal span of the current trace."""
    with tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """The current context as W3C trace context metadata (`traceparent`,
    `tracestate`) for an outgoing gRPC call; empty outside a sampled span,
    and at once with tracing off (no span of ours can be current then)."""
    if _provider is None:
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


@contextlib.contextmanager
def bank_attempt(bank: str, query_id: str) -> Iterator[trace.Span]:
    """One ListCards call (hub.fanout.caller)."""
    attributes = {
        "rpc.system": "grpc",
        "rpc.service": "cardlookup.bank.v1.CardDirectoryService",
        "rpc.method": "ListCards",
        "cardlookup.bank": bank,
        "cardlookup.query_id": query_id,
    }
    with tracer().start_as_current_span(
        "cardlookup.bank.v1.CardDirectoryService/ListCards", kind=SpanKind.CLIENT, attributes=attributes
    ) as current:
        yield current


def end_attempt(current: trace.Span, outcome: str, reason: str = "") -> None:
    """Records how a bank attempt ended: answered / rejected / transient and
    its reason token (a status code name or a rule name)."""
    current.set_attribute("cardlookup.outcome", outcome)
    if reason:
        current.set_attribute("cardlookup.reason", reason)
    if outcome != "answered":
        current.set_status(Status(StatusCode.ERROR, reason or outcome))


def traced_attempt(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorates hub.fanout.caller.attempt(stub, request, bank_code, deadline_s):
    a bank_attempt span around it, ended with the result's kind and reason
    (Answered / Rejected / Transient)."""

    async def traced(stub: Any, request: Any, bank_code: str, deadline_s: float) -> T:
        with bank_attempt(bank_code, request.query_id) as current:
            result = await fn(stub, request, bank_code, deadline_s)
            end_attempt(current, type(result).__name__.lower(), str(getattr(result, "reason", "")))
            return result

    @functools.wraps(fn)
    def run(stub: Any, request: Any, bank_code: str, deadline_s: float) -> Awaitable[T]:
        # Tracing off: the call's own coroutine, with no wrapper frame that
        # every message of the stream would pass through.
        if _provider is None:
            return fn(stub, request, bank_code, deadline_s)
        return traced(stub, request, bank_code, deadline_s)

    return run


def traced_query(name: str) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Decorates an engine method `(self, query_id, ...)`: a span `name`
    with the query id (hub.engine: `query.ready`)."""

    def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def run(self: Any, query_id: str, *args: Any, **kwargs: Any) -> T:
            if _provider is None:
                return await fn(self, query_id, *args, **kwargs)
            with tracer().start_as_current_span(name, attributes={"cardlookup.query_id": query_id}):
                return await fn(self, query_id, *args, **kwargs)

        return run

    return decorate


def instrument_database(db: Database) -> None:
    """A span around every store write (queued until committed)."""
    for name in ("write", "execute", "write_one"):
        setattr(db, name, _traced(getattr(db, name), f"store.{name}"))


def _traced(fn: Callable[..., Awaitable[T]], name: str) -> Callable[..., Awaitable[T]]:
    async def traced(*args: Any, **kwargs: Any) -> T:
        if _provider is None:
            return await fn(*args, **kwargs)
        with tracer().start_as_current_span(name, kind=SpanKind.CLIENT, attributes={"db.system": "cardlookup"}):
            return await fn(*args, **kwargs)

    return traced


class ServerTracing(grpc.aio.ServerInterceptor):
    """One SERVER span per call of the hub's own services (health and
    reflection are left out), parented by the caller's `traceparent`."""

    def __init__(self, prefixes: tuple[str, ...] = ("/cardlookup.",)) -> None:
        self._prefixes = prefixes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler: Any = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or _provider is None or not method.startswith(self._prefixes):
            return handler
        carrier = {k: v for k, v in (handler_call_details.invocation_metadata or ()) if isinstance(v, str)}
        parent = propagate.extract(carrier)
        service, _, name = method[1:].rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

        @contextlib.contextmanager
        def server_span(context: grpc.aio.ServicerContext) -> Iterator[None]:
            token = otel_context.attach(parent)
            started = time.perf_counter()
            try:
                with tracer().start_as_current_span(
                    method[1:], kind=SpanKind.SERVER, attributes=attributes, record_exception=False
                ) as current:
                    error: BaseException | None = None
                    try:
                        yield
                    except BaseException as raised:
                        error = raised
                        raise
                    finally:
                        code = status_code_name(context, error)
                        current.set_attribute("rpc.grpc.status_code", code)
                        current.set_attribute("cardlookup.seconds", round(time.perf_counter() - started, 6))
                        if code not in ("OK", "CANCELLED"):
                            current.set_status(Status(StatusCode.ERROR, code))
            finally:
                otel_context.detach(token)

        if handler.unary_unary is not None:
            behaviour = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with server_span(context):
                    return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                with server_span(context):
                    async for message in stream(request, context):
                        yield message

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
