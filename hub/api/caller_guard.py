"""R17 at the handler level: every method of the hub API first checks that
the caller's client certificate names an allowed client (the app backend).

The TLS handshake already refuses callers without a certificate from the
configured CA; this refuses CA-issued certificates of anyone else (the
hub's own bank-facing client, a bank). A grpc.aio server interceptor cannot
see the peer's certificate, and the hub's server is built before installers
run, so the guard wraps each method handler as it is registered: a handler
cannot be added to the server without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from cardlookup.rpc_errors import HUB_DOMAIN, abort
from cardlookup.tls import peer_names

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


class CallerGuard:
    def __init__(self, allowed: frozenset[str]) -> None:
        self._allowed = allowed

    async def check(self, context: grpc.aio.ServicerContext) -> None:
        if not peer_names(context) & self._allowed:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "CALLER_NOT_ALLOWED",
                "only the app backend may call the hub",
                HUB_DOMAIN,
            )

    def wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        h: Any = handler
        if h.unary_unary is not None:
            return h._replace(unary_unary=self._unary(h.unary_unary))
        if h.unary_stream is not None:
            return h._replace(unary_stream=self._stream(h.unary_stream))
        raise TypeError("the hub API has only unary and server-streaming methods")

    def _unary(self, behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Behaviour:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self.check(context)
            return await behaviour(request, context)

        return guarded

    def _stream(self, behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Behaviour:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await self.check(context)
            async for response in behaviour(request, context):
                yield response

        return guarded


class GuardedRegistrar:
    """Stands in for the server when calling a generated
    `add_*Servicer_to_server`, and registers the guarded handlers instead."""

    def __init__(self, server: grpc.aio.Server, guard: CallerGuard) -> None:
        self._server = server
        self._guard = guard

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        # The generated code passes the same handlers to
        # add_registered_method_handlers, where they are guarded.
        pass

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        guarded = {name: self._guard.wrap(h) for name, h in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, guarded),))
        self._server.add_registered_method_handlers(service, guarded)  # type: ignore[attr-defined]
