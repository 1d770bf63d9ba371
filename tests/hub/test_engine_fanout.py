"""The engine against a real fleet of simulated banks over real mTLS."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from bank_sim.faults import Faults, Misbehaviour
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.domain import BankState, QueryRecord, QueryState
from tests.hub.helpers import (
    assert_report_is_ground_truth,
    fleet_config,
    hub_config,
    new_query,
    replace_address,
    rich_person,
    running_engine,
    running_fleet,
    wait_for,
    wait_until,
)
from tests.replicas.failover import Forwarder

pytestmark = pytest.mark.both_stores

CODES = list(DEFAULT_BANK_CODES)


async def test_query_across_16_banks_is_ground_truth(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = rich_person(population, clock.now().date(), CODES)
    async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        async with running_engine(config, clock) as engine:
            query = new_query(person, CODES)
            accepted = await engine.submit(query)
            assert accepted.state == QueryState.ACCEPTED
            assert accepted.report_due_time == accepted.create_time + dt.timedelta(hours=24)
            assert [b.state for b in accepted.banks] == [BankState.PENDING] * 16

            events = [e async for e in engine.watch(query.query_id)]
            assert events[0].changed_bank_code is None
            assert sorted(e.changed_bank_code for e in events[1:] if e.changed_bank_code) == sorted(
                {c for c in CODES} - {b.bank_code for b in events[0].query.banks if b.state != BankState.PENDING}
            )
            assert events[-1].query.state == QueryState.READY
            assert all(e.query.state == QueryState.RUNNING for e in events[1:-1])

            record = await engine.get(query.query_id)
            assert record is not None and record.state == QueryState.READY
            assert record.ready_time == clock.now()
            assert record.report_expire_time == clock.now() + dt.timedelta(days=7)
            assert all(b.state == BankState.ANSWERED and b.attempt_count == 1 for b in record.banks), record.banks
            report = await engine.read_report(query.query_id)
            assert_report_is_ground_truth(report, population, person, CODES)
            kinds = [n.kind for n in report.notices]
            assert kinds == ["UNLISTED_CARDS", "SAFETY", "UNRECOGNISED_CARDS", "CREDIT_REPORT"]
            assert all(len(c.first_four) == 4 and len(c.last_four) == 4 for c in report.cards)
            assert sum(fleet.call_count(c) for c in CODES) == 16

            # Idempotent on the query id: nothing new is written or called.
            again = await engine.submit(query)
            assert again.state == QueryState.READY
            await asyncio.sleep(0.05)
            assert sum(fleet.call_count(c) for c in CODES) == 16


async def test_bank_down_for_a_while_is_retried_and_its_cards_appear(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:4]
    person = rich_person(population, clock.now().date(), codes, min_banks=2)
    down = codes[0]
    async with (
        running_fleet(fleet_config(pki, population, clock, codes, {down: Faults(down=True)})) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        query = new_query(person, codes)
        await engine.submit(query)
        await wait_until(lambda: fleet.call_count(down) >= 3)
        record = await engine.get(query.query_id)
        assert record is not None and record.state == QueryState.RUNNING
        assert record.banks[0].state == BankState.PENDING
        fleet.set_faults(down, Faults())
        record = await wait_for(engine, query.query_id)
        assert record.banks[0].state == BankState.ANSWERED
        assert record.banks[0].attempt_count >= 4
        assert_report_is_ground_truth(await engine.read_report(query.query_id), population, person, codes)


async def test_a_bank_behind_a_slow_link_is_called_once_and_counted_once(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    """A connection slower to set up than the hub's retry steps (a loaded
    machine, a long link: here the TLS handshake starts 0.5 s after the
    TCP connect, the steps are 20-100 ms) gets the attempt's deadline: the
    call waits for it, reaches the bank once and is counted once. (The hub
    gave grpc its first backoff step as the connect timeout, floored at
    0.1 s: such a connection never came up, and under load a first call
    failed UNAVAILABLE before reaching the bank, counted all the same.)"""
    codes = CODES[:4]
    person = rich_person(population, clock.now().date(), codes, min_banks=2)
    slow = codes[0]
    async with running_fleet(fleet_config(pki, population, clock, codes)) as fleet:
        link = Forwarder(int(fleet.addresses[slow].rpartition(":")[2]), delay=0.5)
        await link.start()
        try:
            config = replace_address(hub_config(pki, fleet.addresses, tmp_path), slow, f"127.0.0.1:{link.port}")
            async with running_engine(config, clock) as engine:
                query = new_query(person, codes)
                await engine.submit(query)
                record = await wait_for(engine, query.query_id)
        finally:
            await link.close()
        assert [(b.state, b.attempt_count) for b in record.banks] == [(BankState.ANSWERED, 1)] * 4
        assert [fleet.call_count(c) for c in codes] == [1] * 4


async def test_bank_down_past_the_window_is_reported_not_answered(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:3]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    down = codes[1]
    async with (
        running_fleet(fleet_config(pki, population, clock, codes, {down: Faults(down=True)})) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        query = new_query(person, codes)
        await engine.submit(query)
        await wait_until(lambda: fleet.call_count(down) >= 2)
        clock.advance(dt.timedelta(hours=23, minutes=59))
        engine.wake()
        calls = fleet.call_count(down)
        await wait_until(lambda: fleet.call_count(down) >= calls + 2)
        record = await engine.get(query.query_id)
        assert record is not None and record.state == QueryState.RUNNING  # still inside the window
        clock.advance(dt.timedelta(minutes=2))
        engine.wake()
        record = await wait_for(engine, query.query_id)
        bank = record.banks[1]
        assert bank.state == BankState.NOT_ANSWERED
        assert bank.reason == "REPORT_WINDOW_CLOSED:UNAVAILABLE"
        report = await engine.read_report(query.query_id)
        section = report.banks[1]
        assert (section.state, section.debit_count, section.credit_count) == (BankState.NOT_ANSWERED, 0, 0)
        assert {c.bank_code for c in report.cards} <= {codes[0], codes[2]}
        assert [s.state for s in report.banks] == [BankState.ANSWERED, BankState.NOT_ANSWERED, BankState.ANSWERED]
        calls = fleet.call_count(down)
        await asyncio.sleep(0.2)
        assert fleet.call_count(down) == calls  # given up: no more calls


async def test_a_slow_bank_does_not_delay_the_others(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:6]
    person = rich_person(population, clock.now().date(), codes, min_banks=2)
    slow = codes[2]
    faults = {slow: Faults(stall_after_cards=0)}
    async with running_fleet(fleet_config(pki, population, clock, codes, faults)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        config = dataclasses.replace(
            config, timings=dataclasses.replace(config.timings, attempt_timeout=dt.timedelta(seconds=1))
        )
        async with running_engine(config, clock) as engine:
            query = new_query(person, codes)
            await engine.submit(query)

            async def others_final() -> QueryRecord:
                async for event in engine.watch(query.query_id):
                    finals = {b.bank_code for b in event.query.banks if b.state != BankState.PENDING}
                    if finals == set(codes) - {slow}:
                        return event.query
                raise AssertionError("watch ended early")

            record = await asyncio.wait_for(others_final(), 10)
            assert record.state == QueryState.RUNNING
            assert record.banks[2].state == BankState.PENDING
            fleet.set_faults(slow, Faults())
            # The stalled attempt hits its deadline, the retry answers.
            record = await wait_for(engine, query.query_id)
            assert record.banks[2].state == BankState.ANSWERED
            assert_report_is_ground_truth(await engine.read_report(query.query_id), population, person, codes)


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        (Misbehaviour.FULL_CARD_NUMBER, "FULL_CARD_NUMBER"),
        (Misbehaviour.WRONG_DIGITS, "BAD_DIGITS"),
        (Misbehaviour.UNKNOWN_CARD_TYPE, "UNKNOWN_CARD_TYPE"),
        (Misbehaviour.SUMMARY_MISMATCH, "SUMMARY_MISMATCH"),
        (Misbehaviour.OVERSIZED_MESSAGE, "MESSAGE_TOO_LARGE"),
    ],
)
async def test_a_misbehaving_bank_is_rejected_and_the_others_stand(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path, misbehaviour: Misbehaviour, reason: str
) -> None:
    codes = CODES[:4]
    person = rich_person(population, clock.now().date(), codes, min_banks=2)
    bad = codes[0]
    faults = {bad: Faults(misbehaviour=misbehaviour)}
    async with (
        running_fleet(fleet_config(pki, population, clock, codes, faults)) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        query = new_query(person, codes)
        await engine.submit(query)
        record = await wait_for(engine, query.query_id)
        assert (record.banks[0].state, record.banks[0].reason) == (BankState.REJECTED, reason)
        assert fleet.call_count(bad) == 1  # a contract violation is final, not retried
        report = await engine.read_report(query.query_id)
        assert report.banks[0].state == BankState.REJECTED and report.banks[0].reason == reason
        assert not [c for c in report.cards if c.bank_code == bad]
        assert_report_is_ground_truth(
            dataclasses.replace(report, banks=report.banks[1:]), population, person, codes[1:]
        )


async def test_a_bank_certificate_at_another_banks_address_is_rejected(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:3]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    impostor_target, real = codes[0], codes[1]
    async with running_fleet(fleet_config(pki, population, clock, codes)) as fleet:
        # The registry says bank A lives where bank B actually serves.
        config = replace_address(hub_config(pki, fleet.addresses, tmp_path), impostor_target, fleet.address(real))
        async with running_engine(config, clock) as engine:
            query = new_query(person, codes)
            await engine.submit(query)
            record = await wait_for(engine, query.query_id)
            a = record.banks[0]
            assert (a.state, a.reason) == (BankState.REJECTED, "WRONG_BANK_CERTIFICATE")
            assert fleet.call_count(impostor_target) == 0
            assert fleet.call_count(real) == 1  # the handshake failed: B never saw A's request
            report = await engine.read_report(query.query_id)
            assert not [c for c in report.cards if c.bank_code == impostor_target]
            assert_report_is_ground_truth(
                dataclasses.replace(report, banks=report.banks[1:]), population, person, codes[1:]
            )


async def test_a_bank_refusing_the_consent_is_rejected_with_its_reason(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:2]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    config = dataclasses.replace(fleet_config(pki, population, clock, codes), trusted_consent_keys={})
    async with (
        running_fleet(config) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        query = new_query(person, codes)
        await engine.submit(query)
        record = await wait_for(engine, query.query_id)
        assert {(b.state, b.reason) for b in record.banks} == {(BankState.REJECTED, "BANK_REFUSED:CONSENT_UNKNOWN_KEY")}
        assert [fleet.call_count(c) for c in codes] == [1, 1]


async def test_an_open_breaker_keeps_traffic_off_a_sick_bank(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:3]
    people = population.eligible_people(clock.now().date())[:4]
    sick = codes[0]
    faults = {sick: Faults(error_rate=1.0, error_code="INTERNAL")}
    async with running_fleet(fleet_config(pki, population, clock, codes, faults)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        config = dataclasses.replace(
            config, timings=dataclasses.replace(config.timings, breaker_failures=2, breaker_reset=dt.timedelta(hours=1))
        )
        async with running_engine(config, clock) as engine:
            queries = [new_query(p, codes) for p in people]
            await asyncio.gather(*(engine.submit(q) for q in queries))
            for q in queries:
                async for event in engine.watch(q.query_id):
                    if all(b.state != BankState.PENDING for b in event.query.banks[1:]):
                        break
            await wait_until(lambda: fleet.call_count(sick) >= 2)
            await asyncio.sleep(0.1)  # calls that left before the breaker opened land
            opened = fleet.call_count(sick)
            await asyncio.sleep(0.3)  # many retry periods (20-100 ms) pass
            # Once 2 calls failed the breaker opened: no retry of any of the
            # 4 tasks reached the bank since (without it, each retries every
            # 20-100 ms). Which first calls left before it opened is a race
            # (calls start as the tasks are picked up).
            assert fleet.call_count(sick) == opened
            assert opened >= 2
            record = await engine.get(queries[0].query_id)
            assert record is not None and record.banks[0].state == BankState.PENDING
            assert all(fleet.call_count(c) == len(queries) for c in codes[1:])


async def test_many_concurrent_watched_queries_all_complete_exactly(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    people = population.eligible_people(clock.now().date())[:30]
    async with (
        running_fleet(fleet_config(pki, population, clock, CODES)) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        queries = [new_query(p, CODES) for p in people]
        await asyncio.gather(*(engine.submit(q) for q in queries))
        records = await asyncio.gather(*(wait_for(engine, q.query_id) for q in queries))
        assert all(r.state == QueryState.READY for r in records)
        for person, query in zip(people, queries, strict=True):
            assert_report_is_ground_truth(await engine.read_report(query.query_id), population, person, CODES)
        assert all(fleet.call_count(c) == len(queries) for c in CODES)
