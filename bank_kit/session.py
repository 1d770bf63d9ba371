"""The optional session stream: CardSessionService.ListCardsSession, many
ListCards exchanges over one bidirectional stream (card_session.proto;
docs/bank-integration.md, "The session stream (optional)").

Each `list_cards` request starts an exchange that is checked and answered
exactly like a ListCards call (bank.py's Desk: validation, the consent for
the list scope, your records, the masking), on a thread of its own, so a
slow exchange blocks no other. Every response echoes the exchange's id and
query id; an exchange ends with a summary, or with an `error` carrying the
status and ErrorInfo reason ListCards would have returned. A `cancel`
drops whatever the exchange still had to send. Exchanges beyond the
server's --max-concurrent end at once with RESOURCE_EXHAUSTED. When the hub
half-closes the stream, the open exchanges finish and the stream ends OK.
The caller check (server.py) guards this service like every bank service.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc

from bank_kit.bank import Desk, answer
from bank_kit.consent import DOMAIN, Refusal
from bank_kit.contract import card_directory_pb2 as pb
from bank_kit.contract import card_session_pb2 as session_pb
from bank_kit.contract import card_session_pb2_grpc as session_grpc


@dataclass(frozen=True)
class _Ended:
    exchange_id: int


_HALF_CLOSED = object()
_STREAM_ENDED = object()


class Session(session_grpc.CardSessionServiceServicer):
    def __init__(self, desk: Desk, max_exchanges: int) -> None:
        self._desk = desk
        self._slots = threading.BoundedSemaphore(max_exchanges)
        self._pool = futures.ThreadPoolExecutor(max_workers=max_exchanges, thread_name_prefix="bank-exchange")

    def ListCardsSession(
        self, requests: Iterator[session_pb.ListCardsSessionRequest], context: grpc.ServicerContext
    ) -> Iterator[session_pb.ListCardsSessionResponse]:
        out: queue.Queue[object] = queue.Queue()
        cancelled: set[int] = set()
        open_exchanges: set[int] = set()
        lock = threading.Lock()

        def read() -> None:
            try:
                for request in requests:
                    if request.WhichOneof("kind") == "cancel":
                        with lock:
                            if request.exchange_id in open_exchanges:
                                cancelled.add(request.exchange_id)
                    elif request.WhichOneof("kind") == "list_cards":
                        with lock:
                            if request.exchange_id in open_exchanges:
                                continue  # the hub never reuses an open exchange's id
                            open_exchanges.add(request.exchange_id)
                        self._start(request.exchange_id, request.list_cards, out, cancelled, lock)
            except grpc.RpcError:
                pass  # the stream broke: the hub retries the open exchanges
            finally:
                out.put(_HALF_CLOSED)

        # The stream ended (the hub cancelled it, the connection broke): stop
        # waiting at once; the exchanges still running are dropped.
        context.add_callback(lambda: out.put(_STREAM_ENDED))
        threading.Thread(target=read, name="bank-session-reader", daemon=True).start()
        half_closed = False
        while context.is_active():
            item = out.get()
            if item is _STREAM_ENDED:
                return
            if item is _HALF_CLOSED:
                half_closed = True
            elif isinstance(item, _Ended):
                with lock:
                    open_exchanges.discard(item.exchange_id)
                    cancelled.discard(item.exchange_id)
            else:
                assert isinstance(item, session_pb.ListCardsSessionResponse)
                with lock:
                    dropped = item.exchange_id in cancelled
                if not dropped:
                    yield item
            with lock:
                if half_closed and not open_exchanges:
                    return

    def _start(
        self,
        exchange_id: int,
        request: pb.ListCardsRequest,
        out: queue.Queue[object],
        cancelled: set[int],
        lock: threading.Lock,
    ) -> None:
        if not self._slots.acquire(blocking=False):
            busy = Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "BANK_BUSY", "too many exchanges in flight")
            out.put(_error(exchange_id, request.query_id, busy))
            out.put(_Ended(exchange_id))
            return
        self._pool.submit(self._exchange, exchange_id, request, out, cancelled, lock)

    def _exchange(
        self,
        exchange_id: int,
        request: pb.ListCardsRequest,
        out: queue.Queue[object],
        cancelled: set[int],
        lock: threading.Lock,
    ) -> None:
        desk = self._desk
        try:
            now = desk.now()
            try:
                desk.admit("ListCardsSession", request.query_id, request.subject, request.consent, now)
                customer = desk.customer(request.subject, request.query_id, now)
            except Refusal as refusal:
                out.put(_error(exchange_id, request.query_id, refusal))
                return
            for message in answer(customer, desk.card_ref):
                with lock:
                    if exchange_id in cancelled:
                        return
                item = message.WhichOneof("item")
                response = session_pb.ListCardsSessionResponse(exchange_id=exchange_id, query_id=request.query_id)
                if item == "card":
                    response.card.CopyFrom(message.card)
                else:
                    response.summary.CopyFrom(message.summary)
                out.put(response)
        except Exception:  # a bug in a data source: the exchange fails, the stream goes on
            failure = Refusal(grpc.StatusCode.INTERNAL, "INTERNAL", "the bank could not answer")
            out.put(_error(exchange_id, request.query_id, failure))
        finally:
            self._slots.release()
            out.put(_Ended(exchange_id))


def _error(exchange_id: int, query_id: str, refusal: Refusal) -> session_pb.ListCardsSessionResponse:
    error = session_pb.ExchangeError(
        code=refusal.code.value[0], reason=refusal.reason, domain=DOMAIN, message=refusal.message
    )
    if refusal.field:
        error.metadata["field"] = refusal.field
    return session_pb.ListCardsSessionResponse(exchange_id=exchange_id, query_id=query_id, error=error)
