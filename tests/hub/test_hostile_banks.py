"""Every bank_sim misbehaviour and fault switch at once, in the same
queries as healthy banks: the hub neither crashes nor lets a sick bank
spoil anyone else's answer. Contract breakers are REJECTED with their
reason, banks that never answer are NOT_ANSWERED when the window closes,
banks that recover are ANSWERED, and every answered bank's cards are
exactly the population's ground truth."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from bank_sim.faults import Faults, Misbehaviour
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from cardlookup.tls import server_credentials
from hub.core.domain import BankState, QueryState
from hub.engine import QueryEngine
from hub.fanout.validation import MAX_CARDS
from tests.hub.helpers import (
    FAST,
    expected_cards,
    fleet_config,
    hub_config,
    new_query,
    report_cards,
    running_engine,
    running_fleet,
    wait_for,
)

pytestmark = pytest.mark.both_stores

CODES = list(DEFAULT_BANK_CODES)
REJECTED = {
    "102": (Faults(misbehaviour=Misbehaviour.FULL_CARD_NUMBER), "FULL_CARD_NUMBER"),
    "103": (Faults(misbehaviour=Misbehaviour.WRONG_DIGITS), "BAD_DIGITS"),
    "104": (Faults(misbehaviour=Misbehaviour.UNKNOWN_CARD_TYPE), "UNKNOWN_CARD_TYPE"),
    "105": (Faults(misbehaviour=Misbehaviour.SUMMARY_MISMATCH), "SUMMARY_MISMATCH"),
    "301": (Faults(misbehaviour=Misbehaviour.OVERSIZED_MESSAGE), "MESSAGE_TOO_LARGE"),
}
NEVER_ANSWER = {
    "403": Faults(stall_after_cards=0),
    "302": Faults(break_after_cards=0),
    "303": Faults(error_rate=1.0, error_code="INTERNAL"),
    "308": Faults(error_code="UNAVAILABLE"),  # the outage window is set in the test (clock-relative)
}
RECOVER = {
    "310": Faults(max_concurrent=1, latency=0.1),
    "305": Faults(latency=0.15, latency_jitter=0.1),
    "304": Faults(error_rate=0.5, error_code="UNAVAILABLE"),
}


async def _settled(engine: QueryEngine, query_id: str, waiting_on: set[str]) -> None:
    """Until every bank outside `waiting_on` has a final outcome."""
    async with asyncio.timeout(30):
        while True:
            record = await engine.get(query_id)
            assert record is not None
            if all(b.state != BankState.PENDING for b in record.banks if b.bank_code not in waiting_on):
                return
            await asyncio.sleep(0.02)


async def test_every_fault_and_misbehaviour_in_one_query_leaves_healthy_banks_exact(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    now = clock.now()
    faults = {code: f for code, (f, _) in REJECTED.items()} | NEVER_ANSWER | RECOVER
    faults["308"] = Faults(outages=((now - dt.timedelta(hours=1), now + dt.timedelta(hours=48)),))
    people = population.eligible_people(now.date())[:3]
    async with running_fleet(fleet_config(pki, population, clock, CODES, faults)) as fleet:
        timings = dataclasses.replace(FAST, attempt_timeout=dt.timedelta(milliseconds=300))
        config = hub_config(pki, fleet.addresses, tmp_path, timings=timings)
        async with running_engine(config, clock) as engine:
            queries = [new_query(p, CODES) for p in people]
            await asyncio.gather(*(engine.submit(q) for q in queries))
            for q in queries:
                await _settled(engine, q.query_id, set(NEVER_ANSWER))
            # Only the window's end settles the banks that never answer.
            clock.advance(dt.timedelta(hours=24, minutes=1))
            engine.wake()
            for person, q in zip(people, queries, strict=True):
                record = await wait_for(engine, q.query_id, QueryState.READY)
                outcome = {b.bank_code: b for b in record.banks}
                for code, (_, reason) in REJECTED.items():
                    assert (outcome[code].state, outcome[code].reason) == (BankState.REJECTED, reason), code
                for code in NEVER_ANSWER:
                    assert outcome[code].state == BankState.NOT_ANSWERED, (code, outcome[code].reason)
                    assert outcome[code].reason.startswith("REPORT_WINDOW_CLOSED"), outcome[code].reason
                answered = [c for c in CODES if c not in REJECTED and c not in NEVER_ANSWER]
                assert all(outcome[c].state == BankState.ANSWERED for c in answered)
                report = await engine.read_report(q.query_id)
                assert report_cards(report) == expected_cards(population, person, answered)
                sections = {s.bank_code: s for s in report.banks}
                for code in answered:
                    truth = population.expected_answer(code, person.id_number)
                    got = sections[code]
                    assert (got.debit_count, got.credit_count, got.unlisted) == (
                        truth.debit_count,
                        truth.credit_count,
                        truth.unlisted,
                    )
                for code in [*REJECTED, *NEVER_ANSWER]:
                    assert (sections[code].debit_count, sections[code].credit_count) == (0, 0)
                    assert not any(c.bank_code == code for c in report.cards)
            assert Counter(fleet.call_count(c) > 1 for c in NEVER_ANSWER) == Counter({True: len(NEVER_ANSWER)})


class EndlessBank(bank_grpc.CardDirectoryServiceServicer):
    """A bank that streams valid masked cards forever and never sends a
    summary. Counts what it managed to send before the hub hung up."""

    def __init__(self) -> None:
        self.sent = 0
        self.cancelled = asyncio.Event()

    async def ListCards(
        self, request: bank_pb.ListCardsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bank_pb.ListCardsResponse]:
        try:
            while True:
                self.sent += 1
                yield bank_pb.ListCardsResponse(
                    card=bank_pb.MaskedCard(
                        card_type=bank_pb.CARD_TYPE_DEBIT,
                        first_four="6222",
                        last_four=f"{self.sent % 10000:04d}",
                        number_length=16,
                        card_ref=f"endless-{self.sent}",
                    )
                )
        finally:
            # The stream never ends by itself: reaching here means the caller
            # hung up (cancellation or the generator being closed).
            self.cancelled.set()


async def test_a_bank_that_streams_forever_is_cut_off_at_the_card_limit(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    endless_code, healthy = "102", "103"
    person = population.eligible_people(clock.now().date())[0]
    endless = EndlessBank()
    server = grpc.aio.server()
    bank_grpc.add_CardDirectoryServiceServicer_to_server(endless, server)
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(pki.bank_cert(endless_code), pki.bank_key(endless_code), pki.ca_cert)
    )
    await server.start()
    try:
        async with running_fleet(fleet_config(pki, population, clock, [healthy])) as fleet:
            addresses = {endless_code: f"127.0.0.1:{port}", healthy: fleet.address(healthy)}
            config = hub_config(pki, addresses, tmp_path)
            async with running_engine(config, clock) as engine:
                query = new_query(person, [endless_code, healthy])
                await engine.submit(query)
                record = await wait_for(engine, query.query_id)
                outcome = {b.bank_code: b for b in record.banks}
                assert (outcome[endless_code].state, outcome[endless_code].reason) == (
                    BankState.REJECTED,
                    "TOO_MANY_CARDS",
                )
                assert outcome[healthy].state == BankState.ANSWERED
                report = await engine.read_report(query.query_id)
                assert report_cards(report) == expected_cards(population, person, [healthy])
                # The hub hung up: the bank's stream was cancelled, not drained.
                await asyncio.wait_for(endless.cancelled.wait(), 5)
                assert MAX_CARDS < endless.sent < 100 * MAX_CARDS
    finally:
        await server.stop(0)
