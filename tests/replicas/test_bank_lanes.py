"""Bank lanes across replicas (issue 16): one replica owns each bank's lane
and makes every call to that bank, so a bank's concurrency cap and its
breaker hold for all replicas together with nothing shared but the lane
row; a dead owner's lane resumes at the first lane round after its lease
ran out; a replica that joins gets its share of lanes through clean
handovers, with no call made twice and none overlapping.

Engines with their own replica ids (what one holds in memory is invisible
to the others, exactly as between processes) on one PostgreSQL database,
against the simulated banks over mTLS. The simulator counts the calls it
answers at once (`peak_in_flight`), the calls it receives, and calls of one
query that overlapped (`overlaps`)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bank_sim.faults import Faults
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import HubConfig
from hub.core.domain import BankState, QueryState
from hub.engine import QueryEngine
from hub.keys.crypto import HubKeys
from hub.store.db import open_database
from hub.store.lanes import LaneStore, wall_us
from tests import stores
from tests.hub.helpers import fleet_config, hub_config, new_query, running_engine, running_fleet, wait_for, wait_until

pytestmark = pytest.mark.slow

CODES = ["102", "103"]


def _with_cap(config: HubConfig, code: str, cap: int) -> HubConfig:
    banks = tuple(dataclasses.replace(b, max_concurrent=cap) if b.code == code else b for b in config.banks)
    return dataclasses.replace(config, banks=banks)


async def test_a_banks_cap_holds_for_two_replicas_together(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    people = population.eligible_people(clock.now().date())[:12]
    faults = {code: Faults(latency=0.15) for code in CODES}  # calls overlap: each takes 150 ms
    async with running_fleet(fleet_config(pki, population, clock, CODES, faults)) as fleet:
        config = _with_cap(hub_config(pki, fleet.addresses, tmp_path, database=stores.new_database()), "102", 2)
        async with (
            running_engine(config, clock, replica_id="replica-a") as a,
            running_engine(config, clock, replica_id="replica-b") as b,
        ):
            queries = [(a if i % 2 else b, new_query(p, CODES)) for i, p in enumerate(people)]
            await asyncio.gather(*(engine.submit(q) for engine, q in queries))
            records = await asyncio.gather(*(wait_for(engine, q.query_id, within=60) for engine, q in queries))
    assert all(r.state == QueryState.READY for r in records)
    assert all(r.banks[0].state == BankState.ANSWERED for r in records)
    assert fleet.call_count("102") == len(people)
    # Each replica alone would allow 2 calls at once (4 together); the one
    # owner of the bank's lane makes every call. 12 calls of 150 ms did overlap.
    assert fleet.peak_in_flight("102") == 2
    assert fleet.peak_in_flight("103") > 2  # uncapped (32), the same calls overlap more


async def test_a_breaker_one_replica_opened_keeps_the_others_off_the_bank(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    people = population.eligible_people(clock.now().date())[:4]
    sick = "102"
    faults = {sick: Faults(error_rate=1.0, error_code="INTERNAL")}
    async with running_fleet(fleet_config(pki, population, clock, CODES, faults)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path, database=stores.new_database())
        config = dataclasses.replace(
            config,
            timings=dataclasses.replace(config.timings, breaker_failures=2, breaker_reset=dt.timedelta(hours=1)),
        )
        async with running_engine(config, clock, replica_id="replica-a") as a:
            first = new_query(people[0], CODES)
            await a.submit(first)
            # Two failed calls open replica A's breaker; no third call follows.
            await wait_until(lambda: fleet.call_count(sick) == 2)
            await asyncio.sleep(0.3)  # many retry periods (20-100 ms)
            assert fleet.call_count(sick) == 2
            # Replica B starts later; queries it accepts are called by the
            # owner of each bank's lane, whose breaker keeps off the sick bank.
            async with running_engine(config, clock, replica_id="replica-b") as b:
                later = [new_query(p, CODES) for p in people[1:]]
                for q in later:
                    await b.submit(q)
                await wait_until(lambda: fleet.call_count("103") == len(people))
                await asyncio.sleep(0.3)
                assert fleet.call_count("103") == len(people)  # the healthy bank was called for each
                assert fleet.call_count(sick) == 2  # the sick one not once more, by either replica
                record = await b.get(later[0].query_id)
                assert record is not None and record.banks[0].state == BankState.PENDING


LEASE = dt.timedelta(milliseconds=1500)
"""Lane rounds every 0.5 s: the tests below wait for rounds, not for time."""


def _with_lease(config: HubConfig) -> HubConfig:
    return dataclasses.replace(config, timings=dataclasses.replace(config.timings, lease_duration=LEASE))


async def _die(engine: QueryEngine) -> None:
    """What a SIGKILL leaves: no more calls or rounds, and no goodbye (its
    lanes and heartbeat stay in the store until their lease runs out)."""
    engine._stopping = True
    for task in engine.lanes.running():
        if task.runner is not None:
            task.runner.cancel()
    for background in list(engine._background):
        background.cancel()
    await asyncio.gather(*engine._background, return_exceptions=True)
    await engine._writer.close()


async def test_a_dead_owners_lane_resumes_at_the_first_round_after_its_lease(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    person = population.eligible_people(clock.now().date())[0]
    code = "102"
    offset = [0]
    start = wall_us()

    def wall() -> int:  # both replicas' lease clock, moved by the test
        return start + offset[0] + (wall_us() - start)

    async with running_fleet(fleet_config(pki, population, clock, [code], {code: Faults(latency=60)})) as fleet:
        config = _with_lease(hub_config(pki, fleet.addresses, tmp_path, database=stores.new_database()))
        db_a = await open_database(config.database)
        a = QueryEngine(config, db_a, HubKeys.load(config), clock, replica_id="replica-a", wall=wall)
        await a.start()
        query = new_query(person, [code])
        await a.submit(query)
        await wait_until(lambda: fleet.call_count(code) == 1)  # A's call hangs at the bank
        async with running_engine(config, clock, replica_id="replica-b", wall=wall) as b:
            await _die(a)
            await db_a.close()
            fleet.set_faults(code, Faults())
            # B's rounds (every lease / 3) leave the lane alone while A's lease runs.
            rounds = b._lane_loop.rounds
            await wait_until(lambda: b._lane_loop.rounds >= rounds + 2)
            assert "102" not in b.lanes.lanes and fleet.call_count(code) == 1
            # The lease runs out: B's next round takes the lane and resumes the task.
            offset[0] = int(LEASE.total_seconds() * 1e6) + 1
            rounds = b._lane_loop.rounds
            record = await wait_for(b, query.query_id, within=60)
            assert b._lane_loop.rounds <= rounds + 1
    assert record.banks[0].state == BankState.ANSWERED
    assert fleet.call_count(code) == 2 and fleet.overlaps(code) == 0
    assert record.banks[0].attempt_count == 2  # A's interrupted call counts: the bank received it


async def test_a_fourth_replica_gets_its_share_through_clean_handovers(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    codes = ["102", "103", "104", "105", "301", "302", "303", "304"]
    people = population.eligible_people(clock.now().date())[:24]
    faults = {c: Faults(latency=0.1, latency_jitter=0.4) for c in codes}
    async with running_fleet(fleet_config(pki, population, clock, codes, faults)) as fleet:
        config = _with_lease(hub_config(pki, fleet.addresses, tmp_path, database=stores.new_database()))
        async with AsyncExitStack() as stack:
            engines = [
                await stack.enter_async_context(running_engine(config, clock, replica_id=f"replica-{n}")) for n in "abc"
            ]
            # Three replicas share the 8 lanes (3 + 3 + 2) after their rounds.
            await wait_until(lambda: sorted(len(e.lanes.lanes) for e in engines) == [2, 3, 3], within=60)
            queries = [new_query(p, codes) for p in people]
            for i, q in enumerate(queries[:12]):
                await engines[i % 3].submit(q)
            d = await stack.enter_async_context(running_engine(config, clock, replica_id="replica-d"))
            for i, q in enumerate(queries[12:]):
                await [*engines, d][i % 4].submit(q)
                await asyncio.sleep(0.1)  # queries keep coming while the lanes move
            await wait_until(lambda: len(d.lanes.lanes) == 2, within=60)
            records = await asyncio.gather(*(wait_for(d, q.query_id, within=120) for q in queries))
            owners = await LaneStore(d._db).owners()
    assert all(r.state == QueryState.READY for r in records)
    assert all(b.state == BankState.ANSWERED for r in records for b in r.banks)
    assert sorted(Counter(owners.values()).values()) == [2, 2, 2, 2]
    # Handed over at a clean point: each (query, bank) was called once, never two at once.
    assert {c: fleet.overlaps(c) for c in codes} == {c: 0 for c in codes}
    assert {c: fleet.max_calls_per_query(c) for c in codes} == {c: 1 for c in codes}
    assert sum(fleet.call_count(c) for c in codes) == len(queries) * len(codes)


async def test_a_stopped_replica_releases_its_lanes_at_once(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    person = population.eligible_people(clock.now().date())[0]
    async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path, database=stores.new_database())
        hour = dataclasses.replace(config.timings, lease_duration=dt.timedelta(hours=1))
        config = dataclasses.replace(config, timings=hour)
        async with running_engine(config, clock, replica_id="replica-b") as b:
            assert sorted(b.lanes.lanes) == CODES  # alone: every lane is its share
        # B stopped (SIGTERM): with a lease of an hour, A still takes every
        # lane at its first round, because B released them.
        async with running_engine(config, clock, replica_id="replica-a") as a:
            assert sorted(a.lanes.lanes) == CODES
            query = new_query(person, CODES)
            await a.submit(query)
            record = await wait_for(a, query.query_id)
    assert [b.state for b in record.banks] == [BankState.ANSWERED] * len(CODES)
    assert [fleet.call_count(c) for c in CODES] == [1] * len(CODES)
