"""A hypothesis-driven hostile bank against the hub's fan-out (issue 9,
"then prove it"; item 4).

The hostile bank is a real grpc.aio server with the bank's certificate; for
each example hypothesis draws the frames it streams: masked cards with
drawn fields (right or wrong digits, types, lengths, references), card
numbers planted where the hub must find them (card_ref split by separators,
first/last four, unknown fields of cards and summaries: text, split text,
nested messages, varints), summaries that do or do not add up, messages
after the summary, empty messages, and bytes that are not protobuf at all.

Each example is one query to the hostile bank and two honest simulated
banks. Properties: the query reaches READY; the honest banks are ANSWERED
with exactly the population's cards (never spoiled); the hostile bank's
outcome is final; a planted card number never lets the answer through and
never appears in the report; at the end no planted number is in the
database file or its WAL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bank_sim.fleet import BankFleet
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import luhn_check_digit
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from cardlookup.tls import server_credentials
from hub.core.domain import BankState, QueryState
from hub.engine import QueryEngine
from hub.keys.crypto import HubKeys
from hub.store.db import Database, open_database
from tests.fuzz.conftest import LoopThread, count, scaled
from tests.hub.helpers import expected_cards, fleet_config, hub_config, new_query, report_cards

HOSTILE, HONEST = "104", ("102", "103")
LIST_CARDS = "/cardlookup.bank.v1.CardDirectoryService/ListCards"


@dataclass
class HostileBank:
    """Streams whatever `frames` holds, then ends the call OK."""

    frames: list[bytes] = field(default_factory=list)

    async def list_cards(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for frame in list(self.frames):
            yield frame


@dataclass
class Rig:
    loop: LoopThread
    bank: HostileBank
    engine: QueryEngine
    db: Database
    database: Path
    person: Person
    population: Population
    planted: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def rig(pki: PkiPaths, population: Population, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("fuzz-bank")
    clock = ManualClock(dt.datetime.now(dt.UTC))
    loop = LoopThread()
    bank = HostileBank()

    async def start() -> tuple[grpc.aio.Server, int, BankFleet, QueryEngine, Database]:
        server = grpc.aio.server()
        handler = grpc.unary_stream_rpc_method_handler(
            bank.list_cards, request_deserializer=lambda b: b, response_serializer=lambda b: b
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("cardlookup.bank.v1.CardDirectoryService", {"ListCards": handler}),)
        )
        port = server.add_secure_port(
            "127.0.0.1:0", server_credentials(pki.bank_cert(HOSTILE), pki.bank_key(HOSTILE), pki.ca_cert)
        )
        await server.start()
        fleet = BankFleet(fleet_config(pki, population, clock, list(HONEST)))
        await fleet.start()
        addresses = {HOSTILE: f"127.0.0.1:{port}", **{c: fleet.address(c) for c in HONEST}}
        config = hub_config(pki, addresses, tmp)
        db = await open_database(config.database)
        engine = QueryEngine(config, db, HubKeys.load(config), clock)
        await engine.start()
        return server, port, fleet, engine, db

    server, _, fleet, engine, db = loop.run(start())
    person = population.eligible_people(clock.now().date())[0]
    try:
        yield Rig(loop, bank, engine, db, tmp / "hub.db", person, population)
    finally:

        async def stop() -> None:
            await engine.stop(grace=1.0)
            await db.close()
            await fleet.stop(grace=0)
            await server.stop(0)

        loop.run(stop())
        loop.close()


# --- frame strategies ---

SEPARATORS = ["-", "_", "", ".", " ", "/", "－"]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len_field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


@st.composite
def card_number(draw: st.DrawFn) -> str:
    body = draw(st.sampled_from(["6222", "6228", "4367", "6217", "5187"])) + draw(
        st.text(alphabet="0123456789", min_size=11, max_size=11)
    )
    return body + luhn_check_digit(body)


def split(number: str, sep: str, size: int) -> str:
    return sep.join(number[i : i + size] for i in range(0, len(number), size))


@st.composite
def hidden_number(draw: st.DrawFn, number: str) -> bytes:
    """Unknown-field bytes that carry `number` somehow."""
    field_no = draw(st.integers(6, 2000))
    text = split(number, draw(st.sampled_from(SEPARATORS)), draw(st.sampled_from([4, 3, 16])))
    how = draw(st.sampled_from(["text", "nested", "varint"]))
    if how == "text":
        return _len_field(field_no, text.encode())
    if how == "nested":
        return _len_field(field_no, _varint(8) + _varint(1) + _len_field(3, text.encode()))
    return _varint(field_no << 3) + _varint(int(number))


@dataclass
class Drawn:
    frames: list[bytes]
    planted: list[str]


@st.composite
def hostile_answer(draw: st.DrawFn) -> Drawn:
    frames: list[bytes] = []
    planted: list[str] = []
    kinds = {1: 0, 2: 0}
    n_cards = draw(st.integers(0, 4))
    for i in range(n_cards):
        number = draw(card_number())
        card = bank_pb.MaskedCard(
            card_type=draw(st.sampled_from([1, 1, 2, 2, 0, 3])),
            first_four=draw(st.sampled_from([number[:4]] * 4 + ["12", "abcd", "１２３４"])),
            last_four=number[-4:],
            number_length=draw(st.sampled_from([len(number)] * 4 + [12, 20, 0])),
            card_ref=draw(st.sampled_from([f"r{i}", f"ref_{i}_2024_01", f"r{i}"] + ([f"r{i - 1}"] if i else []))),
        )
        hazard = draw(st.sampled_from(["none", "none", "ref", "first_four", "unknown"]))
        extra = b""
        if hazard == "ref":
            card.card_ref = split(number, draw(st.sampled_from(SEPARATORS)), draw(st.sampled_from([4, 2, 8])))
            planted.append(number)
        elif hazard == "first_four":
            card.first_four = number
            planted.append(number)
        elif hazard == "unknown":
            extra = draw(hidden_number(number))
            planted.append(number)
        elif draw(st.booleans()):
            extra = _len_field(draw(st.integers(6, 50)), draw(st.text(max_size=20)).encode())  # harmless unknown
        kinds[card.card_type] = kinds.get(card.card_type, 0) + 1
        frames.append(_len_field(1, card.SerializeToString() + extra))
    honest_counts = draw(st.booleans())
    summary = bank_pb.ListCardsSummary(
        listed_card_count=n_cards if honest_counts else draw(st.integers(-1, 5)),
        debit_card_count=kinds[1] if honest_counts else draw(st.integers(0, 5)),
        credit_card_count=kinds[2] if honest_counts else draw(st.integers(0, 5)),
    )
    for _ in range(draw(st.integers(0, 2))):
        summary.unlisted.add(reason=draw(st.integers(0, 4)), card_count=draw(st.integers(-1, 1001)))
    summary_extra = b""
    if draw(st.integers(0, 5)) == 0:
        number = draw(card_number())
        summary_extra = draw(hidden_number(number))
        planted.append(number)
    shape = draw(st.sampled_from(["normal"] * 6 + ["no_summary", "after", "empty", "garbage", "utf8"]))
    summary_frame = _len_field(2, summary.SerializeToString() + summary_extra)
    if shape != "no_summary":
        frames.append(summary_frame)
    if shape == "after":
        frames.append(frames[0] if frames else summary_frame)
    elif shape == "empty":
        frames.insert(draw(st.integers(0, len(frames))), b"")
    elif shape == "garbage":
        frames.insert(draw(st.integers(0, len(frames))), draw(st.binary(min_size=1, max_size=40)))
    elif shape == "utf8":
        frames.insert(0, _len_field(1, _len_field(5, b"\xff\xfe")))
    return Drawn(frames, planted)


async def _run_query(rig: Rig) -> tuple[Any, Any]:
    query = new_query(rig.person, [HOSTILE, *HONEST])
    await rig.engine.submit(query)
    async with asyncio.timeout(15):
        while True:
            record = await rig.engine.get(query.query_id)
            assert record is not None
            if record.state == QueryState.READY:
                break
            await asyncio.sleep(0.02)
    return record, await rig.engine.read_report(query.query_id)


def test_a_hostile_bank_never_spoils_others_and_never_gets_a_number_stored(rig: Rig) -> None:
    honest_truth = expected_cards(rig.population, rig.person, list(HONEST))

    @settings(max_examples=scaled(25))
    @given(drawn=hostile_answer())
    def run(drawn: Drawn) -> None:
        count("hostile bank answers")
        rig.bank.frames = drawn.frames
        rig.planted.extend(drawn.planted)
        record, report = rig.loop.run(_run_query(rig))
        outcome = {b.bank_code: b for b in record.banks}
        for code in HONEST:
            assert outcome[code].state == BankState.ANSWERED, (code, outcome[code])
        cards = report_cards(report)
        assert +Counter({k: v for k, v in cards.items() if k[0] in HONEST}) == honest_truth
        hostile = outcome[HOSTILE]
        assert hostile.state in (BankState.ANSWERED, BankState.REJECTED), hostile
        if drawn.planted:
            assert hostile.state == BankState.REJECTED, (hostile, drawn)
        for c in report.cards:
            assert len(c.first_four) == 4 and c.first_four.isdigit() and 13 <= c.number_length <= 19
        text = repr(report)
        for number in drawn.planted:
            assert number not in text and number[4:-4] not in text

    run()
    # Nothing planted is anywhere in the stored bytes either.
    rig.loop.run(rig.db.fetch_one("SELECT 1"))
    stored = b"".join(
        Path(f"{rig.database}{s}").read_bytes() for s in ("", "-wal") if Path(f"{rig.database}{s}").exists()
    )
    for number in rig.planted:
        assert number.encode() not in stored and number[4:-4].encode() not in stored
