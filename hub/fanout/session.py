"""ListCards exchanges over one session stream per bank (issue 16 item 4).

`BankSession.exchange` has the meaning of `caller.attempt`: one ListCards
request, one `AttemptResult`, never an exception for what the bank does. It
carries the request as one exchange of the bank's long-lived
`CardSessionService.ListCardsSession` stream (see card_session.proto), which
the session opens on first use and re-opens after a break.

Per exchange: a hub-chosen id (counting up, never reused on a stream), the
attempt's deadline (then a `cancel` goes to the bank and the attempt is
transient, DEADLINE_EXCEEDED), and the same `AnswerValidator` as a ListCards
answer. A response whose echoed query id is not the exchange's
(QUERY_ID_MISMATCH) or that fails validation rejects that exchange only; a
bank error (`ExchangeError`) is classified like a ListCards status.

Per stream: one reader task hands each response to its exchange. What
cannot be attributed to an open exchange (an id never started, or one that
already ended: a message after its summary; an undecodable message) breaks
the stream: every open exchange ends transient (the retry loop calls again)
and, for `cooloff` seconds, `exchange` answers UNSUPPORTED so that the
caller uses per-call ListCards, where the same fault is attributed to one
query. A stream that ends or breaks ends its open exchanges transient too.
The session first finds out whether the bank offers it (a stream
half-closed at once: UNIMPLEMENTED or OK). In mode auto UNIMPLEMENTED is
remembered for `reprobe` seconds, meanwhile `exchange` answers UNSUPPORTED
at once; in mode on it is a transient failure.

Exchanges in flight on one stream are at most the bank's `max_concurrent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import grpc

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_session_pb2 as session_pb
from cardlookup.bank.v1 import card_session_pb2_grpc as session_grpc
from hub.core.logging import get_logger
from hub.fanout.caller import Answered, AttemptResult, Rejected, Transient, classify, safe_reason
from hub.fanout.policy import BankCallPolicy
from hub.fanout.validation import (
    MAX_MESSAGE_BYTES,
    AnswerRejected,
    AnswerValidator,
    unknown_field_hides_card_number,
)

log = get_logger("hub.fanout.session")


class Unsupported:
    def __repr__(self) -> str:
        return "UNSUPPORTED"


UNSUPPORTED: Final = Unsupported()
"""`exchange` did not call the bank: use per-call ListCards."""

SessionResult = AttemptResult | Unsupported

_ENVELOPE_BYTES = 128
"""exchange_id and query_id on top of a ListCards message."""
_CANCELLED_KEPT = 4096
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # untyped in grpc-stubs
_FINAL_CODES = {grpc.StatusCode.PERMISSION_DENIED.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0]}
_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def error_result(error: session_pb.ExchangeError) -> AttemptResult:
    """What an exchange's `error` means, as `caller.classify` for a status."""
    if error.code == 0 or error.code not in _CODE_NAMES:
        return Rejected("MALFORMED_MESSAGE")
    if error.code in _FINAL_CODES:
        reason = safe_reason(error.reason) if error.reason else _CODE_NAMES[error.code]
        return Rejected(f"BANK_REFUSED:{reason}")
    exhausted = error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    return Transient(_CODE_NAMES[error.code], slow_down=exhausted)


@dataclass
class _Exchange:
    query_id: str
    validator: AnswerValidator
    result: asyncio.Future[SessionResult]


@dataclass
class _Stream:
    """One ListCardsSession call and its exchanges."""

    call: Any
    next_id: int = 1
    open: dict[int, _Exchange] = field(default_factory=dict)
    cancelled: OrderedDict[int, None] = field(default_factory=OrderedDict)
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False
    reader: asyncio.Task[None] | None = None


class BankSession:
    """The session stream to one bank, from one hub process."""

    def __init__(
        self,
        stub: session_grpc.CardSessionServiceStub,
        bank_code: str,
        max_concurrent: int,
        *,
        fallback: bool = True,
        reprobe: float = BankCallPolicy.session_reprobe,
        cooloff: float = BankCallPolicy.session_cooloff,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """`fallback`: UNIMPLEMENTED means "call per call" (registry mode
        auto); without it UNIMPLEMENTED is a transient failure (mode on).
        `reprobe`, `cooloff`: the policy's `session_reprobe` and
        `session_cooloff` (hub.fanout.policy), judged by `now` (monotonic
        seconds; tests pass their own function)."""
        self._stub = stub
        self._bank_code = bank_code
        self._limit = asyncio.Semaphore(max_concurrent)
        self.max_concurrent = max_concurrent
        self._fallback = fallback
        self._reprobe = reprobe
        self._cooloff = cooloff
        self._now = now
        self._stream: _Stream | None = None
        self._per_call_until = 0.0
        self._offered = False
        """The bank answered the discovery stream (it has the session)."""
        self._discovering = asyncio.Lock()
        self._closed = False
        self.streams_opened = 0
        """Streams opened so far (tests check one stream carries many exchanges)."""
        self.breaks: dict[str, int] = {}
        """Streams broken by a bank's protocol violation, by reason."""

    def resize(self, max_concurrent: int) -> None:
        """A reloaded `max_concurrent` (issue 19 item 4): exchanges started
        from now on wait on the new limit; those in progress finish on the
        old one."""
        if max_concurrent != self.max_concurrent:
            self._limit, self.max_concurrent = asyncio.Semaphore(max_concurrent), max_concurrent

    @property
    def streaming(self) -> bool:
        """Whether a session stream to the bank is open now."""
        return self._stream is not None and not self._stream.ended

    def per_call(self) -> bool:
        """True while the bank is to be called per call (no session)."""
        return self._closed or self._now() < self._per_call_until

    async def exchange(self, request: bank_pb.ListCardsRequest, deadline_s: float) -> SessionResult:
        if self.per_call():
            return UNSUPPORTED
        async with self._limit:
            if not self._offered:
                started = time.monotonic()
                found = await self._discover(deadline_s / 2)
                if found is not None:
                    return found
                deadline_s -= time.monotonic() - started
            stream = self._open()
            exchange_id = stream.next_id
            stream.next_id += 1
            result: asyncio.Future[SessionResult] = asyncio.get_running_loop().create_future()
            ex = _Exchange(request.query_id, AnswerValidator(self._bank_code), result)
            stream.open[exchange_id] = ex
            message = session_pb.ListCardsSessionRequest(exchange_id=exchange_id, list_cards=request)
            message.timeout.FromMilliseconds(max(1, int(deadline_s * 1000)))
            try:
                async with asyncio.timeout(deadline_s):
                    if not await self._write(stream, message):
                        return ex.result.result() if ex.result.done() else Transient("UNAVAILABLE")
                    return await ex.result
            except TimeoutError:
                self._give_up(stream, exchange_id)
                return Transient(grpc.StatusCode.DEADLINE_EXCEEDED.name)
            except asyncio.CancelledError:
                self._give_up(stream, exchange_id)
                raise

    async def _discover(self, deadline_s: float) -> SessionResult | None:
        """Whether the bank offers the session, by a stream the
        hub half-closes at once: UNIMPLEMENTED, or OK (the bank ends an idle
        half-closed stream). Writing an exchange first would race the
        bank's UNIMPLEMENTED, which grpc then reports as INTERNAL. Returns
        what the attempt gets if it cannot use the session, else None."""
        async with self._discovering:
            if self._offered:
                return None
            if self.per_call():
                return UNSUPPORTED
            stub: Any = self._stub
            call = stub.ListCardsSession(timeout=deadline_s)
            try:
                with contextlib.suppress(Exception):
                    # grpc.aio lets core's error through when the connection
                    # is going away; the call's status shows in read().
                    await call.done_writing()
                while await call.read() is not _EOF:
                    pass  # nothing is due on an idle stream; drop it
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNIMPLEMENTED and self._fallback:
                    self._per_call_until = self._now() + self._reprobe
                    return UNSUPPORTED
                if code != grpc.StatusCode.DEADLINE_EXCEEDED:
                    return classify(error)
                # It holds the half-closed stream open: it has the method.
            except Exception:  # grpc.aio's own errors on a broken connection
                return Transient(grpc.StatusCode.UNAVAILABLE.name)
            finally:
                call.cancel()
            self._offered = True
            return None

    async def close(self) -> None:
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            self._end(stream, Transient("CANCELLED"))
            stream.call.cancel()
            if stream.reader is not None:
                stream.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await stream.reader

    # -- the stream ---------------------------------------------------------

    def _open(self) -> _Stream:
        stream = self._stream
        if stream is None or stream.ended:
            # No deadline: the stream lives as long as both sides keep it.
            # grpc-stubs types the stub as sync; on an aio channel it takes no iterator.
            stub: Any = self._stub
            stream = _Stream(call=stub.ListCardsSession())
            stream.reader = asyncio.get_running_loop().create_task(self._read(stream))
            self._stream = stream
            self.streams_opened += 1
        return stream

    async def _write(self, stream: _Stream, message: session_pb.ListCardsSessionRequest) -> bool:
        """Sends one request; False if the stream is gone (its exchanges
        were ended by the reader, or are ended here)."""
        try:
            async with stream.write_lock:
                if stream.ended:
                    return False
                await stream.call.write(message)
            return True
        except Exception:  # AioRpcError, InvalidStateError, or core's own on a broken connection
            # The reader sees the status and ends the exchanges with it; give
            # it the chance, then end whatever it did not.
            if stream.reader is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(stream.reader), 1.0)
            self._end(stream, Transient("UNAVAILABLE"))
            return False

    def _give_up(self, stream: _Stream, exchange_id: int) -> None:
        """The hub stops waiting for an exchange: tell the bank (best effort)."""
        ex = stream.open.pop(exchange_id, None)
        if ex is None or stream.ended:
            return
        if not ex.result.done():
            ex.result.cancel()
        self._send_cancel(stream, exchange_id)

    def _send_cancel(self, stream: _Stream, exchange_id: int) -> None:
        """Tells the bank the hub ended an exchange; drops its late messages."""
        self._remember_cancelled(stream, exchange_id)
        cancel = session_pb.ListCardsSessionRequest(exchange_id=exchange_id, cancel=session_pb.CancelExchange())
        task = asyncio.get_running_loop().create_task(self._write(stream, cancel))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    @staticmethod
    def _remember_cancelled(stream: _Stream, exchange_id: int) -> None:
        stream.cancelled[exchange_id] = None
        while len(stream.cancelled) > _CANCELLED_KEPT:
            stream.cancelled.popitem(last=False)

    async def _read(self, stream: _Stream) -> None:
        try:
            while True:
                response = await stream.call.read()
                if response is _EOF:
                    self._end(stream, Transient(grpc.StatusCode.UNAVAILABLE.name))
                    return
                violation = self._dispatch(stream, response)
                if violation:
                    self._violated(stream, violation)
                    return
        except grpc.aio.AioRpcError as error:
            self._ended_with(stream, error)
        except asyncio.CancelledError:
            self._end(stream, Transient("CANCELLED"))
            raise
        except Exception:  # grpc.aio's own errors on a broken connection
            self._end(stream, Transient(grpc.StatusCode.UNAVAILABLE.name))
            stream.call.cancel()

    def _ended_with(self, stream: _Stream, error: grpc.aio.AioRpcError) -> None:
        code = error.code()
        if code == grpc.StatusCode.UNIMPLEMENTED:
            self._offered = False  # the bank dropped the session: find out again
        if code == grpc.StatusCode.UNIMPLEMENTED and self._fallback:
            self._per_call_until = self._now() + self._reprobe
            self._end(stream, UNSUPPORTED)
        elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (error.details() or ""):
            # Which exchange sent it is unknown: per-call ListCards finds out.
            self._violated(stream, "MESSAGE_TOO_LARGE")
        else:
            self._end(stream, classify(error))

    def _violated(self, stream: _Stream, reason: str) -> None:
        self.breaks[reason] = self.breaks.get(reason, 0) + 1
        log.warning("bank_session_broken", bank=self._bank_code, reason=reason, open_exchanges=len(stream.open))
        self._per_call_until = self._now() + self._cooloff
        self._end(stream, Transient("SESSION_BROKEN"))
        stream.call.cancel()

    def _end(self, stream: _Stream, result: SessionResult) -> None:
        stream.ended = True
        exchanges, stream.open = stream.open, {}
        for ex in exchanges.values():
            if not ex.result.done():
                ex.result.set_result(result)
        if self._stream is stream:
            self._stream = None

    def _dispatch(self, stream: _Stream, response: session_pb.ListCardsSessionResponse | None) -> str:
        """Hands one response to its exchange; returns a stream violation's
        reason, or "" if the stream goes on."""
        if not isinstance(response, session_pb.ListCardsSessionResponse):
            return "MALFORMED_MESSAGE"
        exchange_id = response.exchange_id
        ex = stream.open.get(exchange_id)
        if ex is None:
            if exchange_id in stream.cancelled:
                return ""  # the hub gave up on it; late messages are dropped
            return "MESSAGE_AFTER_END" if 0 < exchange_id < stream.next_id else "UNKNOWN_EXCHANGE"
        result = self._feed(ex, response)
        if result is not None:
            del stream.open[exchange_id]
            if not isinstance(result, Answered) and not response.HasField("error"):
                # The hub ends it (rejected): the bank may stop; drop the rest.
                self._send_cancel(stream, exchange_id)
            if not ex.result.done():
                ex.result.set_result(result)
        return ""

    @staticmethod
    def _feed(ex: _Exchange, response: session_pb.ListCardsSessionResponse) -> AttemptResult | None:
        """Validates one message of an exchange; its result if it ended it."""
        try:
            if response.ByteSize() > MAX_MESSAGE_BYTES + _ENVELOPE_BYTES:
                raise AnswerRejected("MESSAGE_TOO_LARGE")
            if unknown_field_hides_card_number(response):
                raise AnswerRejected("FULL_CARD_NUMBER")
            if response.query_id != ex.query_id:
                raise AnswerRejected("QUERY_ID_MISMATCH")
            which = response.WhichOneof("item")
            if which == "card":
                ex.validator.feed(bank_pb.ListCardsResponse(card=response.card))
                return None
            if which == "summary":
                ex.validator.feed(bank_pb.ListCardsResponse(summary=response.summary))
                return Answered(ex.validator.finish())
            if which == "error":
                return error_result(response.error)
            raise AnswerRejected("EMPTY_MESSAGE")
        except AnswerRejected as rejected:
            return Rejected(rejected.reason)
