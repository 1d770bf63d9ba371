"""The session stream over every data source: exchanges answered like
ListCards with their ids echoed, each exchange's consent checked on its
own, a cancel, a half-close ending the stream OK."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator

from bank_kit.contract import card_session_pb2 as session_pb
from bank_kit.contract import card_session_pb2_grpc as session_grpc
from bank_kit.tests.conftest import Bench
from bank_kit.tests.test_list_cards import people, with_listed_cards

_END = object()


def exchanges(bench: Bench, requests: list[session_pb.ListCardsSessionRequest]) -> dict[int, list]:
    """Sends the requests on one stream, half-closes it, and gathers every
    response by exchange until the bank ends the stream."""
    stub = session_grpc.CardSessionServiceStub(bench.channel)
    by_exchange: dict[int, list] = {}
    for response in stub.ListCardsSession(iter(requests), timeout=60):
        by_exchange.setdefault(response.exchange_id, []).append(response)
    return by_exchange


def test_each_exchange_is_answered_like_list_cards_with_its_ids(bench: Bench) -> None:
    everyone = people()
    requests = [
        session_pb.ListCardsSessionRequest(exchange_id=i + 1, list_cards=bench.list_request(who))
        for i, who in enumerate(everyone)
    ]
    got = exchanges(bench, requests)
    assert set(got) == {r.exchange_id for r in requests}
    for request in requests:
        answer = got[request.exchange_id]
        assert {m.query_id for m in answer} == {request.list_cards.query_id}
        assert [m.WhichOneof("item") for m in answer][-1] == "summary"
        direct = list(bench.cards.ListCards(request.list_cards))
        assert [m.card for m in answer[:-1]] == [m.card for m in direct[:-1]]
        assert answer[-1].summary == direct[-1].summary


def test_a_bad_consent_fails_its_exchange_only(bench: Bench) -> None:
    who = with_listed_cards()
    good = bench.list_request(who)
    wrong_bank = bench.list_request(who, bank="998")
    got = exchanges(
        bench,
        [
            session_pb.ListCardsSessionRequest(exchange_id=1, list_cards=wrong_bank),
            session_pb.ListCardsSessionRequest(exchange_id=2, list_cards=good),
        ],
    )
    (error,) = got[1]
    assert (error.error.code, error.error.reason, error.error.domain) == (7, "CONSENT_WRONG_BANK", "cardlookup.bank.v1")
    assert error.query_id == wrong_bank.query_id and who[1] not in error.error.message
    assert got[2][-1].WhichOneof("item") == "summary"


def test_a_late_cancel_is_harmless_and_the_stream_goes_on(bench: Bench) -> None:
    who = with_listed_cards()
    requests: queue.Queue[object] = queue.Queue()

    def stream() -> Iterator[session_pb.ListCardsSessionRequest]:
        while (item := requests.get()) is not _END:
            assert isinstance(item, session_pb.ListCardsSessionRequest)
            yield item

    stub = session_grpc.CardSessionServiceStub(bench.channel)
    call = stub.ListCardsSession(stream(), timeout=60)
    requests.put(session_pb.ListCardsSessionRequest(exchange_id=1, list_cards=bench.list_request(who)))
    first = [next(call)]
    while first[-1].WhichOneof("item") != "summary":
        first.append(next(call))
    requests.put(session_pb.ListCardsSessionRequest(exchange_id=1, cancel=session_pb.CancelExchange()))
    requests.put(session_pb.ListCardsSessionRequest(exchange_id=2, list_cards=bench.list_request(who)))
    requests.put(_END)
    rest = list(call)
    assert {m.exchange_id for m in rest} == {2} and rest[-1].WhichOneof("item") == "summary"
    assert str(uuid.UUID(rest[-1].query_id)) == rest[-1].query_id
