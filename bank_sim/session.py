"""The session stream of one simulated bank:
CardSessionService.ListCardsSession (card_session.proto).

Each `list_cards` request starts an exchange that runs the bank's own
ListCards (`CardDirectoryServicer.ListCards`: the same caller check, fault
switches, consent verification, answer and call counters) as a task of its
own, so exchanges run concurrently and a slow one blocks nobody. The
exchange's messages go out tagged with its `exchange_id` and `query_id`; a
status ListCards would have ended with becomes the exchange's `error`
(code, ErrorInfo reason, domain and metadata). A `cancel` cancels the
exchange's task. When the hub half-closes the stream, the open exchanges
finish and the stream ends OK.

The session misbehaviours (faults.Misbehaviour.SESSION_*) break exactly one
rule of the session each, for the hub's defences and the conformance suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from bank_sim.faults import Misbehaviour
from bank_sim.servicer import CALLER_NOT_HUB, INVALID_REQUEST, CardDirectoryServicer
from bank_sim.state import BankState
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_session_pb2 as session_pb
from cardlookup.bank.v1 import card_session_pb2_grpc as session_grpc
from cardlookup.pki import HUB_CLIENT_NAME
from cardlookup.rpc_errors import BANK_DOMAIN, abort, error_info_from_trailers
from cardlookup.tls import peer_common_names, peer_names

log = logging.getLogger(__name__)


class _ExchangeEnded(Exception):
    """ListCards ended this exchange with a status other than OK."""

    def __init__(self, status: session_pb.ExchangeError) -> None:
        super().__init__(status.code)
        self.status = status


class _ExchangeContext:
    """What ListCards needs of a call's context, for one exchange: the
    stream's peer (caller check) and metadata, and `abort` ending only the
    exchange."""

    def __init__(self, stream: grpc.aio.ServicerContext) -> None:
        self._stream = stream

    def auth_context(self) -> Any:
        return self._stream.auth_context()

    def peer(self) -> str:
        return self._stream.peer()

    def invocation_metadata(self) -> Any:
        """The stream's metadata (its `traceparent` is the one the hub sent
        when it opened the stream)."""
        return self._stream.invocation_metadata()

    async def abort_with_status(self, status: grpc.Status) -> None:
        error = session_pb.ExchangeError(code=status.code.value[0], message=status.details or "")
        info = error_info_from_trailers(status.trailing_metadata)
        if info is not None:
            error.reason, error.domain = info.reason, info.domain
            error.metadata.update(info.metadata)
        raise _ExchangeEnded(error)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        raise _ExchangeEnded(session_pb.ExchangeError(code=code.value[0], message=details))


def _other_query_id(query_id: str) -> str:
    """A query id that is not `query_id` (same shape)."""
    last = query_id[-1:] or "0"
    return query_id[:-1] + ("1" if last == "0" else "0")


def _forget(tasks: dict[int, asyncio.Task[None]], exchange_id: int, task: asyncio.Task[None]) -> None:
    if tasks.get(exchange_id) is task:
        del tasks[exchange_id]


class CardSessionServicer(session_grpc.CardSessionServiceServicer):
    def __init__(
        self,
        directory: CardDirectoryServicer,
        state: BankState,
        allowed_callers: frozenset[str] = frozenset({HUB_CLIENT_NAME}),
    ) -> None:
        self._directory = directory
        self._state = state
        self._allowed_callers = allowed_callers

    async def ListCardsSession(
        self,
        request_iterator: AsyncIterator[session_pb.ListCardsSessionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[session_pb.ListCardsSessionResponse]:
        misbehaviour = self._state.faults.misbehaviour
        callers = peer_names(context)
        if misbehaviour is Misbehaviour.CALLER_BY_COMMON_NAME:
            callers |= peer_common_names(context)
        if not callers & self._allowed_callers:
            denied = grpc.StatusCode.PERMISSION_DENIED
            await abort(context, denied, CALLER_NOT_HUB, "only the hub may call", BANK_DOMAIN)
        out: asyncio.Queue[session_pb.ListCardsSessionResponse | None] = asyncio.Queue()
        tasks: dict[int, asyncio.Task[None]] = {}
        serial = asyncio.Lock() if misbehaviour is Misbehaviour.SESSION_STALL_BLOCKS_OTHERS else None
        carried = False  # an exchange came on this stream
        stall_next = serial is not None  # the first exchange of the stream stalls
        bad_request: list[str] = []

        async def read() -> None:
            try:
                async for request in request_iterator:
                    exchange_id = request.exchange_id
                    which = request.WhichOneof("kind")
                    if which == "cancel":
                        task = tasks.pop(exchange_id, None)
                        if task is not None:
                            task.cancel()
                    elif which == "list_cards" and exchange_id and exchange_id not in tasks:
                        nonlocal stall_next, carried
                        if not carried:
                            carried = True
                            self._state.session_streams += 1
                        stall, stall_next = stall_next, False
                        task = asyncio.get_running_loop().create_task(
                            self._exchange(exchange_id, request.list_cards, context, out, serial, stall=stall)
                        )
                        tasks[exchange_id] = task
                        task.add_done_callback(functools.partial(_forget, tasks, exchange_id))
                    else:
                        bad_request.append("a request with no exchange, a reused exchange_id or no kind")
                        break
                while tasks:  # half-closed: finish the open exchanges, then end OK
                    await asyncio.gather(*list(tasks.values()), return_exceptions=True)
            finally:
                out.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (message := await out.get()) is not None:
                yield message
            if bad_request:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, INVALID_REQUEST, bad_request[0], BANK_DOMAIN)
        finally:
            reader.cancel()
            for task in list(tasks.values()):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _exchange(
        self,
        exchange_id: int,
        request: bank_pb.ListCardsRequest,
        context: grpc.aio.ServicerContext,
        out: asyncio.Queue[session_pb.ListCardsSessionResponse | None],
        serial: asyncio.Lock | None,
        stall: bool,
    ) -> None:
        misbehaviour = self._state.faults.misbehaviour
        query_id = request.query_id
        if misbehaviour is Misbehaviour.SESSION_WRONG_QUERY_ID:
            query_id = _other_query_id(query_id)
        async with serial if serial is not None else contextlib.nullcontext():
            if stall:
                await asyncio.Event().wait()  # until the hub cancels it
            exchange: Any = _ExchangeContext(context)
            try:
                async for message in self._directory.ListCards(request, exchange):
                    response = session_pb.ListCardsSessionResponse(exchange_id=exchange_id, query_id=query_id)
                    if message.HasField("card"):
                        response.card.CopyFrom(message.card)
                    else:
                        response.summary.CopyFrom(message.summary)
                    out.put_nowait(response)
                    if message.HasField("summary") and misbehaviour is Misbehaviour.SESSION_MESSAGE_AFTER_SUMMARY:
                        out.put_nowait(response)
            except _ExchangeEnded as ended:
                out.put_nowait(
                    session_pb.ListCardsSessionResponse(exchange_id=exchange_id, query_id=query_id, error=ended.status)
                )
