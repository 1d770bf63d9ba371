"""The hub API's metrics interceptor: counts every call of the hub's gRPC
server by method and status code, times it, and counts open WatchQuery
streams (on `HubMetrics`, hub.telemetry.metrics)."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from cardlookup.rpc_errors import status_code_name
from hub.telemetry.metrics import HubMetrics


class ApiMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call of the hub's gRPC server by method and status code
    (one place for all services: the API, health, reflection, admin)."""

    def __init__(self, metrics: HubMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler  # type: ignore[return-value]
        method = handler_call_details.method.rsplit("/", 1)[-1] or "unknown"
        metrics = self._metrics
        is_watch = method == "WatchQuery"

        def done(context: grpc.aio.ServicerContext, started: float, error: BaseException | None) -> None:
            metrics.api_in_progress -= 1
            code = status_code_name(context, error)
            metrics.api_calls.labels(method, code).inc()
            metrics.api_seconds.labels(method).observe(time.perf_counter() - started)

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                metrics.api_in_progress += 1
                try:
                    response = await inner_uu(request, context)
                except BaseException as error:
                    done(context, started, error)
                    raise
                done(context, started, None)
                return response

            return handler._replace(unary_unary=unary_unary)
        if handler.unary_stream is not None and not inspect.isasyncgenfunction(handler.unary_stream):
            # A streaming handler that writes with context.write (the health
            # service's Watch): wrapped as a coroutine, not a generator
            # (grpc refuses a generator that also writes).
            inner_write = handler.unary_stream

            async def unary_stream_writer(request: Any, context: grpc.aio.ServicerContext) -> None:
                started = time.perf_counter()
                metrics.api_in_progress += 1
                try:
                    await inner_write(request, context)
                except BaseException as error:
                    done(context, started, error)
                    raise
                done(context, started, None)

            return handler._replace(unary_stream=unary_stream_writer)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started = time.perf_counter()
                metrics.api_in_progress += 1
                if is_watch:
                    metrics.watch_subscribers.inc()
                try:
                    async for response in inner_us(request, context):
                        yield response
                except BaseException as error:
                    done(context, started, error)
                    raise
                finally:
                    if is_watch:
                        metrics.watch_subscribers.dec()
                done(context, started, None)

            return handler._replace(unary_stream=unary_stream)
        return handler
