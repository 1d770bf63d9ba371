"""What replicas share about a bank (issue 8): its concurrency cap holds for
all replicas together, and a bank one replica found down is not hammered by
the others, including a replica that starts after the breaker opened.

Two engines with their own replica ids (what one holds in memory is
invisible to the other, exactly as between processes) on one PostgreSQL
database, against the simulated banks over mTLS. The simulator counts the
calls it answers at once (`peak_in_flight`) and the calls it receives."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from bank_sim.faults import Faults
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.config import HubConfig
from hub.domain import BankState, QueryState
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
    # Each replica alone would allow 2 calls at once (4 together); the
    # shared slots allow 2 for both. 12 calls of 150 ms did overlap.
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
            # Replica B starts after the verdict was announced, and has never
            # called the bank: it reads the verdict and keeps off the bank too.
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
