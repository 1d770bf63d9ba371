"""The server around the services: one caller check on every bank method,
RESOURCE_EXHAUSTED past --max-concurrent with as many threads, and records
that cannot answer ending the call UNAVAILABLE with a reason."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from pathlib import Path

import grpc
import pytest

from bank_kit.bank import Desk
from bank_kit.consent import ConsentVerifier
from bank_kit.contract import card_directory_pb2 as pb
from bank_kit.contract import card_session_pb2 as session_pb
from bank_kit.contract import card_session_pb2_grpc as session_grpc
from bank_kit.records import Customer, SourceUnavailable
from bank_kit.server import HubOnly, StopSignals, build_server
from bank_kit.sources import discover
from bank_kit.sources.sqlite_records import SqliteRecords
from bank_kit.tests.conftest import BANK_CODE, EXAMPLE, KEY_ID, SECRET, SIGNER, Bench, Clock, refusal, serve
from bank_kit.tests.test_list_cards import with_listed_cards


def test_every_method_of_every_bank_service_is_kept_to_the_hub() -> None:
    guard = HubOnly()
    methods = [
        f"/{s.full_name}/{m.name}"
        for contract in (pb, session_pb)
        for s in contract.DESCRIPTOR.services_by_name.values()
        for m in s.methods
    ]
    assert len(methods) >= 3 and all(guard.guards(m) for m in methods)
    assert not guard.guards("/grpc.health.v1.Health/Check")
    assert not guard.guards("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")


class Blocking:
    """A data source that holds every call until released."""

    name = "blocking-test"

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def find(self, id_number: str, query_id: str, now: dt.datetime) -> Customer | None:
        self.entered.release()
        self.release.wait()
        return None


class Down:
    name = "down-test"

    def find(self, id_number: str, query_id: str, now: dt.datetime) -> Customer | None:
        raise SourceUnavailable("CORE_BANKING_DOWN")


def _desk(source: object, clock: Clock) -> Desk:
    return Desk(ConsentVerifier(BANK_CODE, {KEY_ID: SIGNER.public_key()}), source, SECRET, clock)  # type: ignore[arg-type]


def test_calls_past_max_concurrent_are_refused_at_once_with_as_many_threads() -> None:
    source, clock = Blocking(), Clock()
    running = build_server(_desk(source, clock), None, max_concurrent=3, interceptors=())
    assert running.executor._max_workers == 3  # one thread per call allowed in flight, no queue behind
    port = running.server.add_insecure_port("127.0.0.1:0")
    running.server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    bench = Bench(source, clock, channel, Path("unused"))  # type: ignore[arg-type]
    held = [bench.cards.ListCards(bench.list_request(with_listed_cards())) for _ in range(3)]
    waiters = [threading.Thread(target=lambda c=c: list(c), daemon=True) for c in held]
    try:
        for w in waiters:
            w.start()
        for _ in held:
            assert source.entered.acquire(timeout=60)
        extra = bench.list_request(with_listed_cards())
        with pytest.raises(grpc.RpcError) as caught:
            list(bench.cards.ListCards(extra))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        source.release.set()
        for w in waiters:
            w.join()
        channel.close()
        running.server.stop(None)


def test_records_that_cannot_answer_end_the_call_unavailable_with_a_reason() -> None:
    clock = Clock()
    server, channel, _ = serve(_desk(Down(), clock), None)
    try:
        bench = Bench(Down(), clock, channel, Path("unused"))  # type: ignore[arg-type]
        request = bench.list_request(with_listed_cards())
        assert refusal(lambda: list(bench.cards.ListCards(request))) == (
            grpc.StatusCode.UNAVAILABLE,
            "CORE_BANKING_DOWN",
        )
    finally:
        channel.close()
        server.stop(None)


def test_the_sqlite_source_maps_a_broken_database_to_unavailable(tmp_path: Path) -> None:
    source = SqliteRecords.example(EXAMPLE, tmp_path)
    (tmp_path / "records.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(SourceUnavailable) as caught:
        source.find(with_listed_cards()[1], "6f1c2d3e-0000-4000-8000-000000000001", dt.datetime.now(dt.UTC))
    assert caught.value.reason == "RECORDS_UNAVAILABLE"


def test_the_sqlite_source_answers_a_retry_as_of_the_querys_first_time(tmp_path: Path) -> None:
    """An ID document expiring at midnight between two attempts of one query
    does not change the retry's answer; a new query sees it expired."""
    source = SqliteRecords.example(EXAMPLE, tmp_path)
    _, id_number = with_listed_cards()
    expiry = dt.date(2026, 3, 1)
    with source._connect() as db:
        db.execute("UPDATE cards SET id_expires = ? WHERE id_number = ?", (expiry.isoformat(), id_number))
    before = dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.UTC)
    after = before + dt.timedelta(minutes=2)
    query, later_query = "6f1c2d3e-0000-4000-8000-000000000002", "6f1c2d3e-0000-4000-8000-000000000003"
    first = source.find(id_number, query, before)
    assert first is not None and any(not c.conditions for c in first.cards)
    assert source.find(id_number, query, after) == first
    later = source.find(id_number, later_query, after)
    assert later is not None and all("ID_DOCUMENT_EXPIRED" in c.conditions for c in later.cards)


def test_the_data_sources_are_found_in_their_folder() -> None:
    found = discover()
    assert {"json", "sqlite"} <= set(found)
    assert all(cls.__module__.startswith("bank_kit.sources.") for cls in found.values())


def test_session_exchanges_past_max_concurrent_end_resource_exhausted() -> None:
    source, clock = Blocking(), Clock()
    running = build_server(_desk(source, clock), None, max_concurrent=2, interceptors=())
    port = running.server.add_insecure_port("127.0.0.1:0")
    running.server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    bench = Bench(source, clock, channel, Path("unused"))  # type: ignore[arg-type]
    requests = [
        session_pb.ListCardsSessionRequest(exchange_id=i, list_cards=bench.list_request(with_listed_cards()))
        for i in (1, 2, 3)
    ]
    stream = session_grpc.CardSessionServiceStub(channel).ListCardsSession(iter(requests), timeout=120)
    try:
        for _ in range(2):
            assert source.entered.acquire(timeout=60)  # exchanges 1 and 2 hold both slots
        busy = next(stream)
        assert (busy.exchange_id, busy.error.code) == (3, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
        source.release.set()
        assert {m.exchange_id for m in stream} == {1, 2}  # then they finish and the stream ends OK
    finally:
        source.release.set()
        channel.close()
        running.server.stop(None)


def test_a_second_stop_signal_is_counted_even_before_the_drain_began() -> None:
    """Two stop signals back to back (the second before the server has
    reacted to the first): the first starts the drain, the second ends it;
    one of them was lost when both set one event that the drain cleared."""
    runners = signal.getsignal(signal.SIGINT)
    stops = StopSignals()
    try:
        assert not stops.wait(0)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.wait()  # the drain begins
        assert stops.wait(600)  # and ends at once: the second signal waited for it
        assert not stops.wait(0)  # two signals, two stops, no more
    finally:
        stops.close()
    assert signal.getsignal(signal.SIGINT) is runners  # the test runner's own again
