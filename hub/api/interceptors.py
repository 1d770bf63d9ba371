"""The hub API's cross-cutting concerns, in one grpc.aio server interceptor
(R17; issue 9 items 1, 2 and 9).

For every method of cardlookup.hub.v1.CardLookupService the interceptor
returns a handler that wraps the generated one, in this order:

1. Caller check: the client certificate's DNS SubjectAltNames (never its
   common name: a CA-issued certificate may carry any CN) must include an
   allowed client, else PERMISSION_DENIED / CALLER_NOT_ALLOWED. The wrapped
   behaviour receives the call's context, whose auth_context() holds the
   verified peer names; the TLS handshake has already checked the chain.
2. Request decoding: the request is decoded here, not by gRPC, so that a
   malformed message (invalid UTF-8 in a string, truncated, field number 0,
   nesting deeper than protobuf's limit) is INVALID_ARGUMENT /
   MALFORMED_REQUEST and an oversized one RESOURCE_EXHAUSTED /
   MESSAGE_TOO_LARGE (hub.api.limits), never UNKNOWN with Python's
   exception text.
3. Stream cap: at most `max_watch_streams` WatchQuery streams per caller
   name at once; one more is RESOURCE_EXHAUSTED / WATCH_LIMIT_REACHED.
4. Error mapping: a RuleViolation becomes its contract status and reason
   (hub.api.errors); an unexpected exception is logged (type only) and
   answered UNAVAILABLE / HUB_UNAVAILABLE with a fixed sentence.
5. Deadline: a unary call runs at most `max_call_time` (or the client's
   shorter deadline); past it the call ends UNAVAILABLE / HUB_UNAVAILABLE
   (retry later) instead of holding a store call forever.
6. Response size: a response above MAX_RESPONSE_BYTES is refused with
   RESOURCE_EXHAUSTED / RESPONSE_TOO_LARGE.
7. Degraded store (issue 19): every HUB_UNAVAILABLE carries a
   google.rpc.RetryInfo. While the store refuses writes (`writes_available`
   says so, hub.process.server), a write method (WRITE_METHODS) gets at most
   DEGRADED_WRITE_BUDGET_S, so it fails fast instead of holding the caller;
   reads run as usual. Each write method's outcome is reported to
   `on_write_outcome` (a success shows the store takes writes again).

Other services on the port (health, reflection) pass through untouched.
The stream counts live in this process only (a cap per replica): they are
incremented and decremented by the wrapped stream itself, nobody else.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import asyncpg
import grpc
from google.protobuf.message import DecodeError

from cardlookup.rpc_errors import HUB_DOMAIN, abort
from hub.api.errors import extra_details, status_of
from hub.api.limits import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES
from hub.core import calls
from hub.core.config import HubConfig
from hub.core.logging import get_logger
from hub.identity.errors import RuleViolation
from hub.keys.crypto import KekUnknown

log = get_logger("hub.api")

SERVICE_NAME = "cardlookup.hub.v1.CardLookupService"
_PREFIX = f"/{SERVICE_NAME}/"
WATCH_METHOD = f"{_PREFIX}WatchQuery"
WRITE_METHODS = frozenset(
    {"EnrollUser", "StartVerification", "CreateQuery", "ChangePaymentPassword", "FlagCard", "GetReport"}
)
"""The methods that cannot answer without a store write (GetReport records
every access and counts wrong passwords, R10); every other method of the
service (GetUser, ListBanks, GetQuery, ListQueries, WatchQuery) is a read."""
DEGRADED_WRITE_BUDGET_S = 1.0
"""The longest a write method runs while the store refuses writes."""
RETRY_DELAY_S = 1.0
DEGRADED_RETRY_DELAY_S = 5.0
"""RetryInfo's delay on HUB_UNAVAILABLE: normally, and while the store refuses writes."""


@dataclass(frozen=True)
class Malformed:
    """What the decoding step hands the behaviour instead of a request it
    could not decode; the behaviour refuses it (a deserializer that raises
    would make gRPC answer UNKNOWN with the exception text)."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: dict[str, str]


_NOT_PROTOBUF = Malformed(
    grpc.StatusCode.INVALID_ARGUMENT,
    "MALFORMED_REQUEST",
    "the request is not a valid protobuf message of this method",
    {},
)
_TOO_LARGE = Malformed(
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    "MESSAGE_TOO_LARGE",
    f"the request exceeds {MAX_REQUEST_BYTES} bytes",
    {"limit": str(MAX_REQUEST_BYTES)},
)


def safe_deserializer(from_string: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """Wraps a generated FromString: a request, or a `Malformed`."""

    def decode(raw: bytes) -> Any:
        if len(raw) > MAX_REQUEST_BYTES:
            return _TOO_LARGE
        try:
            return from_string(raw)
        except (DecodeError, RecursionError, ValueError):
            return _NOT_PROTOBUF

    return decode


def caller_names(context: grpc.aio.ServicerContext) -> frozenset[str]:
    """The DNS SubjectAltNames of the caller's verified client certificate
    (the common name is deliberately not read)."""
    auth = context.auth_context()
    return frozenset(n.decode() if isinstance(n, bytes) else str(n) for n in auth.get("peer_dns", []))


class ApiInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self, allowed_clients: frozenset[str], max_watch_streams: int = 1000, max_call_time: float = 30.0
    ) -> None:
        self._allowed = allowed_clients
        self._max_watch = max_watch_streams
        self._max_call_time = max_call_time
        self._watching: collections.Counter[str] = collections.Counter()
        self.writes_available: Callable[[], bool] = lambda: True
        """Whether the store takes writes now (hub.process.server sets it)."""
        self.on_write_outcome: Callable[[bool], None] = lambda ok: None
        """Told True when a write method succeeded, False when it failed for
        a reason other than a rule (a store error, a timeout)."""

    def _retry_delay(self) -> float:
        return RETRY_DELAY_S if self.writes_available() else DEGRADED_RETRY_DELAY_S

    @classmethod
    def for_config(cls, config: HubConfig) -> ApiInterceptor:
        """The interceptor the hub server is built with (hub.process.server)."""
        return cls(config.allowed_clients, max_watch_streams=config.timings.watch_streams_per_caller)

    def open_watch_streams(self, caller: str) -> int:
        """WatchQuery streams `caller` has open now (for tests and metrics)."""
        return self._watching[caller]

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler: Any = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(_PREFIX):
            return handler
        name = method[len(_PREFIX) :]
        decode = safe_deserializer(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(name, handler.unary_unary),
                request_deserializer=decode,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(name, method == WATCH_METHOD, handler.unary_stream),
                request_deserializer=decode,
                response_serializer=handler.response_serializer,
            )
        raise TypeError("the hub API has only unary and server-streaming methods")

    async def _admit(self, request: Any, context: grpc.aio.ServicerContext) -> str:
        """The caller's allowed name, after the caller and request checks."""
        names = caller_names(context) & self._allowed
        if not names:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "CALLER_NOT_ALLOWED",
                "only the app backend may call the hub",
                HUB_DOMAIN,
            )
        if isinstance(request, Malformed):
            await abort(context, request.code, request.reason, request.message, HUB_DOMAIN, request.metadata)
        return min(names)

    def _unary(self, name: str, behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Any:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._admit(request, context)
            remaining = context.time_remaining()
            budget = self._max_call_time if remaining is None else min(remaining, self._max_call_time)
            write = name in WRITE_METHODS
            degraded = write and not self.writes_available()
            if degraded:
                budget = min(budget, DEGRADED_WRITE_BUDGET_S)
            calls.set_deadline(asyncio.get_running_loop().time() + max(budget, 0.0))
            try:
                async with asyncio.timeout(max(budget, 0.0)):
                    response = await behaviour(request, context)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except TimeoutError:
                if degraded:
                    self.on_write_outcome(False)
                await abort(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    "HUB_UNAVAILABLE",
                    _DEGRADED if degraded else "the hub could not complete the request in time; retry later",
                    HUB_DOMAIN,
                    retry_delay_s=self._retry_delay(),
                )
            except Exception as exc:
                if write and _is_store_error(exc):
                    self.on_write_outcome(False)
                await _refuse(context, name, exc, self._retry_delay(), quiet=write and _is_store_error(exc))
            if write:
                self.on_write_outcome(True)
            await _check_size(context, response)
            return response

        return guarded

    def _stream(
        self, name: str, capped: bool, behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
    ) -> Any:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            caller = await self._admit(request, context)
            if capped and self._watching[caller] >= self._max_watch:
                await abort(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "WATCH_LIMIT_REACHED",
                    "too many WatchQuery streams are open; close one or poll GetQuery",
                    HUB_DOMAIN,
                    {"limit": str(self._max_watch)},
                )
            if capped:
                self._watching[caller] += 1
            try:
                async for response in behaviour(request, context):
                    await _check_size(context, response)
                    yield response
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                await _refuse(context, name, exc, self._retry_delay())
            finally:
                if capped:
                    self._watching[caller] -= 1
                    if self._watching[caller] <= 0:
                        del self._watching[caller]

        return guarded


_DEGRADED = "the hub cannot store changes right now (reads still work); retry later"


def _is_store_error(exc: Exception) -> bool:
    """A database refusing or failing a statement (full disk, read-only
    database, lost connection), not a bug of the hub's own."""
    return isinstance(exc, sqlite3.DatabaseError | asyncpg.PostgresError | asyncpg.InterfaceError | OSError)


async def _refuse(
    context: grpc.aio.ServicerContext, method: str, exc: Exception, retry_delay_s: float, quiet: bool = False
) -> NoReturn:
    if isinstance(exc, RuleViolation):
        log.info("refused", method=method, reason=exc.reason)
        extra = extra_details(exc.reason, exc.message, exc.metadata, exc.retry_delay)
        retry = retry_delay_s if exc.reason == "HUB_UNAVAILABLE" else None
        await abort(context, status_of(exc.reason), exc.reason, exc.message, HUB_DOMAIN, exc.metadata, extra, retry)
    unknown = _kek_unknown(exc)
    if unknown is not None:
        # Issue 24: data sealed under a KEK the configuration no longer lists.
        # Retrying cannot help until an operator lists the key again.
        log.error("kek_unknown", method=method, problem=str(unknown).split(": ", 1)[0], key_id=unknown.key_id)
        await abort(
            context,
            status_of("KEY_NOT_CONFIGURED"),
            "KEY_NOT_CONFIGURED",
            "the hub cannot open this data: a key it was sealed under is not configured; an operator must act",
            HUB_DOMAIN,
        )
    if quiet:  # the store refuses writes: logged once by the engine, not per call
        log.warning("write_refused", method=method, error_type=type(exc).__name__)
    else:
        log.error("failed", method=method, exc_info=True)
    await abort(
        context,
        grpc.StatusCode.UNAVAILABLE,
        "HUB_UNAVAILABLE",
        _DEGRADED if quiet else "the hub could not complete the request; retry later",
        HUB_DOMAIN,
        retry_delay_s=retry_delay_s,
    )


def _kek_unknown(exc: BaseException | None) -> KekUnknown | None:
    """The KekUnknown behind `exc` (itself, or what it was raised from)."""
    for _ in range(8):
        if exc is None or isinstance(exc, KekUnknown):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


async def _check_size(context: grpc.aio.ServicerContext, response: Any) -> None:
    if response.ByteSize() > MAX_RESPONSE_BYTES:
        await abort(
            context,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "RESPONSE_TOO_LARGE",
            f"the response would exceed {MAX_RESPONSE_BYTES} bytes; ask for a smaller page",
            HUB_DOMAIN,
            {"limit": str(MAX_RESPONSE_BYTES)},
        )
