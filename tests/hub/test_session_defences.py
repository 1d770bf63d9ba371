"""The hub's session stream against a scripted bank (issue 16 item 4): a real
grpc.aio server over mTLS whose ListCardsSession answers whatever each test
scripts, byte for byte, so every rule the hub enforces on the session can be
broken on purpose. No timing: a stalled exchange meets a short deadline."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_session_pb2 as session_pb
from cardlookup.pki import PkiPaths
from cardlookup.tls import server_credentials
from hub.core.config import BankEndpoint, ConfigError, HubConfig
from hub.fanout.caller import Answered, Rejected, Transient
from hub.fanout.channels import BankChannels
from hub.fanout.policy import BankCallPolicy
from hub.fanout.session import UNSUPPORTED, BankSession, error_result
from tests.hub.helpers import hub_config, wait_until
from tests.hub.test_config_file import EXAMPLE, example_dir

CODE = "102"
Send = Callable[[bytes], None]
Script = Callable[[session_pb.ListCardsSessionRequest, Send], Awaitable[None]]
HANG_UP = b"hang up"
"""Sent by a script: the bank ends the stream UNAVAILABLE there."""


def card(ref: str) -> session_pb.ListCardsSessionResponse:
    return session_pb.ListCardsSessionResponse(
        card=bank_pb.MaskedCard(
            card_type=bank_pb.CARD_TYPE_DEBIT, first_four="6222", last_four="0007", number_length=16, card_ref=ref
        )
    )


def summary(cards: int) -> session_pb.ListCardsSessionResponse:
    return session_pb.ListCardsSessionResponse(
        summary=bank_pb.ListCardsSummary(listed_card_count=cards, debit_card_count=cards)
    )


def tagged(message: session_pb.ListCardsSessionResponse, exchange_id: int, query_id: str) -> bytes:
    message.exchange_id, message.query_id = exchange_id, query_id
    return message.SerializeToString()


async def right_answer(request: session_pb.ListCardsSessionRequest, send: Send) -> None:
    if request.HasField("list_cards"):
        qid = request.list_cards.query_id
        send(tagged(card("ref-1"), request.exchange_id, qid))
        send(tagged(summary(1), request.exchange_id, qid))


class ScriptedBank:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[session_pb.ListCardsSessionRequest] = []
        self.streams = 0
        self.abort_with: grpc.StatusCode | None = None

    async def handle(
        self, requests: AsyncIterator[session_pb.ListCardsSessionRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        if self.abort_with is not None:
            await context.abort(self.abort_with, "scripted")
        self.streams += 1
        out: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def read() -> None:
            async for request in requests:
                self.received.append(request)
                await self.script(request, out.put_nowait)
            out.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (item := await out.get()) is not None:
                if item == HANG_UP:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted hang-up")
                yield item
        finally:
            reader.cancel()


class Ticks:
    """The sessions' monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Rig:
    def __init__(
        self, bank: ScriptedBank, channels: BankChannels, address: str, policy: BankCallPolicy, ticks: Ticks
    ) -> None:
        self.bank, self.channels, self.address, self.policy, self.ticks = bank, channels, address, policy, ticks

    def session(self, mode: str = "on") -> BankSession:
        return self.channels.session(BankEndpoint(CODE, CODE, CODE, self.address, session=mode))

    async def attempt(self, mode: str = "on", deadline: float = 30) -> object:
        endpoint = BankEndpoint(CODE, CODE, CODE, self.address, session=mode)
        return await self.channels.attempt(endpoint, request(), deadline)


@contextlib.asynccontextmanager
async def scripted(pki: PkiPaths, script: Script, tmp_path: Path) -> AsyncIterator[Rig]:
    bank = ScriptedBank(script)
    handler = grpc.stream_stream_rpc_method_handler(
        bank.handle,
        request_deserializer=session_pb.ListCardsSessionRequest.FromString,
        response_serializer=lambda raw: raw,
    )
    server = grpc.aio.server()
    generic = grpc.method_handlers_generic_handler(
        "cardlookup.bank.v1.CardSessionService", {"ListCardsSession": handler}
    )
    server.add_generic_rpc_handlers((generic,))
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(pki.bank_cert(CODE), pki.bank_key(CODE), pki.ca_cert)
    )
    await server.start()
    address = f"127.0.0.1:{port}"
    config = hub_config(pki, {CODE: address}, tmp_path)
    policy = BankCallPolicy.from_timings(config.timings)
    ticks = Ticks()
    channels = BankChannels(config.bank_tls, policy, now=ticks)
    try:
        yield Rig(bank, channels, address, policy, ticks)
    finally:
        await channels.close()
        await server.stop(0)


def request() -> bank_pb.ListCardsRequest:
    return bank_pb.ListCardsRequest(query_id=str(uuid.uuid4()))


async def test_many_exchanges_share_one_stream_and_may_end_in_any_order(pki: PkiPaths, tmp_path: Path) -> None:
    held: list[tuple[int, str]] = []

    async def second_first(req: session_pb.ListCardsSessionRequest, send: Send) -> None:
        if not req.HasField("list_cards"):
            return
        held.append((req.exchange_id, req.list_cards.query_id))
        if len(held) == 2:  # answer the second exchange, then the first
            for exchange_id, qid in reversed(held):
                send(tagged(card(f"ref-{exchange_id}"), exchange_id, qid))
                send(tagged(summary(1), exchange_id, qid))
        elif len(held) > 2:
            await right_answer(req, send)

    async with scripted(pki, second_first, tmp_path) as rig:
        session = rig.session()
        first, second = await asyncio.gather(session.exchange(request(), 30), session.exchange(request(), 30))
        assert isinstance(first, Answered) and [c.card_ref for c in first.answer.cards] == ["ref-1"]
        assert isinstance(second, Answered) and [c.card_ref for c in second.answer.cards] == ["ref-2"]
        assert isinstance(await session.exchange(request(), 30), Answered)
        # One discovery stream (half-closed at once), then one stream for all.
        assert rig.bank.streams == 2 and session.streams_opened == 1
        assert [r.exchange_id for r in rig.bank.received] == [1, 2, 3]
        # The attempt's deadline, less what discovery took for the first exchanges.
        assert all(0 < r.timeout.ToMilliseconds() <= 30_000 for r in rig.bank.received)
        assert rig.bank.received[-1].timeout.ToMilliseconds() == 30_000


async def test_a_stalled_exchange_meets_its_deadline_is_cancelled_and_blocks_no_other(
    pki: PkiPaths, tmp_path: Path
) -> None:
    first_query: list[str] = []

    async def stall_the_first(req: session_pb.ListCardsSessionRequest, send: Send) -> None:
        if req.exchange_id != 1:
            await right_answer(req, send)
        elif req.HasField("list_cards"):
            first_query.append(req.list_cards.query_id)
        else:  # its cancel: answer it late anyway
            send(tagged(summary(0), 1, first_query[0]))

    async with scripted(pki, stall_the_first, tmp_path) as rig:
        session = rig.session()
        stalled = asyncio.ensure_future(session.exchange(request(), 3))
        await wait_until(lambda: first_query)  # it is exchange 1
        assert isinstance(await session.exchange(request(), 30), Answered)
        assert await stalled == Transient("DEADLINE_EXCEEDED")
        await wait_until(lambda: any(r.HasField("cancel") for r in rig.bank.received))
        assert [(r.exchange_id, r.WhichOneof("kind")) for r in rig.bank.received][-1] == (1, "cancel")
        # The late answer of the cancelled exchange is dropped; the stream goes on.
        assert isinstance(await session.exchange(request(), 30), Answered)
        assert session.breaks == {} and session.streams_opened == 1


def _violations() -> list[
    tuple[str, Callable[[session_pb.ListCardsSessionRequest], list[bytes]], object, dict[str, int]]
]:
    def ids(req: session_pb.ListCardsSessionRequest) -> tuple[int, str]:
        return req.exchange_id, req.list_cards.query_id

    return [
        # Another query's answer: that exchange is rejected, the stream goes on.
        (
            "wrong query id",
            lambda r: [tagged(card("a"), r.exchange_id, str(uuid.uuid4())), tagged(summary(1), *ids(r))],
            Rejected("QUERY_ID_MISMATCH"),
            {},
        ),
        # A contract violation inside an exchange: as for ListCards.
        (
            "summary mismatch",
            lambda r: [tagged(card("a"), *ids(r)), tagged(summary(2), *ids(r))],
            Rejected("SUMMARY_MISMATCH"),
            {},
        ),
        (
            "empty message",
            lambda r: [tagged(session_pb.ListCardsSessionResponse(), *ids(r))],
            Rejected("EMPTY_MESSAGE"),
            {},
        ),
        (
            "bank refusal",
            lambda r: [
                tagged(
                    session_pb.ListCardsSessionResponse(
                        error=session_pb.ExchangeError(code=7, reason="CONSENT_EXPIRED", domain="cardlookup.bank.v1")
                    ),
                    *ids(r),
                )
            ],
            Rejected("BANK_REFUSED:CONSENT_EXPIRED"),
            {},
        ),
        # What cannot be attributed to an open exchange breaks the stream.
        (
            "unknown exchange",
            lambda r: [tagged(card("a"), r.exchange_id + 1000, r.list_cards.query_id)],
            Transient("SESSION_BROKEN"),
            {"UNKNOWN_EXCHANGE": 1},
        ),
        ("undecodable message", lambda r: [b"\xff\xff\xff"], Transient("SESSION_BROKEN"), {"MALFORMED_MESSAGE": 1}),
    ]


@pytest.mark.parametrize(
    ("answer", "expected", "breaks"), [v[1:] for v in _violations()], ids=[v[0] for v in _violations()]
)
async def test_a_broken_rule_fails_the_exchange_or_the_stream(
    pki: PkiPaths,
    tmp_path: Path,
    answer: Callable[[session_pb.ListCardsSessionRequest], list[bytes]],
    expected: object,
    breaks: dict[str, int],
) -> None:
    async def script(req: session_pb.ListCardsSessionRequest, send: Send) -> None:
        if req.exchange_id == 1 and req.HasField("list_cards"):
            for raw in answer(req):
                send(raw)
        else:
            await right_answer(req, send)

    async with scripted(pki, script, tmp_path) as rig:
        session = rig.session()
        assert await session.exchange(request(), 30) == expected
        assert session.breaks == breaks
        if breaks:
            # Per call for a while: the session says so without calling.
            assert session.per_call() and await session.exchange(request(), 30) is UNSUPPORTED
        else:
            assert isinstance(await session.exchange(request(), 30), Answered)
            assert session.streams_opened == 1


async def test_the_end_of_the_stream_fails_its_open_exchanges_transiently(pki: PkiPaths, tmp_path: Path) -> None:
    seen: list[int] = []

    async def hang_up_at_the_second(req: session_pb.ListCardsSessionRequest, send: Send) -> None:
        seen.append(req.exchange_id)  # the first stays open; the second hangs up
        if len(seen) == 2:
            send(HANG_UP)
        elif len(seen) > 2:
            await right_answer(req, send)

    async with scripted(pki, hang_up_at_the_second, tmp_path) as rig:
        session = rig.session()
        first = asyncio.ensure_future(session.exchange(request(), 30))
        await wait_until(lambda: rig.bank.received)
        second = await session.exchange(request(), 30)
        assert (await first, second) == (Transient("UNAVAILABLE"), Transient("UNAVAILABLE"))
        assert session.breaks == {} and not session.per_call()
        # The next exchange opens a new stream.
        assert isinstance(await session.exchange(request(), 30), Answered)
        assert session.streams_opened == 2 and rig.bank.streams == 3  # and the discovery stream
        assert seen == [1, 2, 1]  # numbered per stream


@pytest.mark.parametrize(("mode", "expected"), [("auto", "per-call"), ("on", Transient("UNIMPLEMENTED"))])
async def test_unimplemented_falls_back_per_call_in_auto_mode_only(
    pki: PkiPaths, tmp_path: Path, mode: str, expected: object
) -> None:
    async with scripted(pki, right_answer, tmp_path) as rig:
        rig.bank.abort_with = grpc.StatusCode.UNIMPLEMENTED
        result = await rig.attempt(mode)
        if expected == "per-call":
            # The scripted bank has no ListCards: the per-call attempt ran and
            # got UNIMPLEMENTED from the server itself.
            assert result == Transient("UNIMPLEMENTED")
            assert rig.session(mode).per_call()
            rig.ticks.t += rig.policy.session_reprobe  # the policy's reprobe time, on the injected clock
            assert not rig.session(mode).per_call()  # the session is tried again
        else:
            assert result == expected and not rig.session(mode).per_call()


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (7, "CONSENT_EXPIRED", Rejected("BANK_REFUSED:CONSENT_EXPIRED")),
        (3, "", Rejected("BANK_REFUSED:INVALID_ARGUMENT")),
        (3, "bad 110101199001011234", Rejected("BANK_REFUSED:UNSPECIFIED")),
        (8, "TOO_MANY_CONCURRENT_CALLS", Transient("RESOURCE_EXHAUSTED", slow_down=True)),
        (14, "", Transient("UNAVAILABLE")),
        (0, "", Rejected("MALFORMED_MESSAGE")),
        (99, "", Rejected("MALFORMED_MESSAGE")),
    ],
)
def test_an_exchange_error_means_what_the_status_would(code: int, reason: str, expected: object) -> None:
    assert error_result(session_pb.ExchangeError(code=code, reason=reason)) == expected


async def test_a_re_addressed_bank_gets_a_new_session_on_its_new_channel(pki: PkiPaths, tmp_path: Path) -> None:
    async with scripted(pki, right_answer, tmp_path) as rig:
        old = rig.session()
        assert isinstance(await old.exchange(request(), 30), Answered)
        port = rig.address.rsplit(":", 1)[1]
        moved = BankEndpoint(CODE, CODE, CODE, f"localhost:{port}", session="on")
        assert isinstance(await rig.channels.attempt(moved, request(), 30), Answered)
        new = rig.channels.session(moved)
        assert new is not old and new.streams_opened == 1
        # The old channel closes after its grace; its stream's end is no break.
        await wait_until(lambda: not old.streaming, within=60)
        assert old.breaks == {}


def test_the_registry_session_mode_is_read_written_and_checked(tmp_path: Path, pki: PkiPaths) -> None:
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    config = HubConfig.from_file(example_dir(tmp_path / "a", pki), env={})
    assert [b.session for b in config.banks] == ["off", "auto"]  # the default, and the example's
    again = example_dir(tmp_path / "b", pki, config.to_toml())
    assert [b.session for b in HubConfig.from_file(again, env={}).banks] == ["off", "auto"]
    wrong = EXAMPLE.read_text(encoding="utf-8").replace('session = "auto"', 'session = "always"')
    with pytest.raises(ConfigError, match=r'banks\[1\]\.session: must be "off", "auto" or "on"'):
        HubConfig.from_file(example_dir(tmp_path / "c", pki, wrong), env={})
