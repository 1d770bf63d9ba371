"""The ready SMS (R9) is sent once across replicas even when sending it
takes longer than a bank-task lease (found by the three-replica test: on a
loaded machine the outbox write waited behind argon2 hashes for seconds,
the claim ran out with the lease, and other replicas sent the SMS again)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.domain import QueryRecord
from tests import stores
from tests.hub.helpers import (
    FAST,
    fleet_config,
    hub_config,
    new_query,
    rich_person,
    running_engine,
    running_fleet,
    wait_for,
)

pytestmark = pytest.mark.slow

CODES = ["102"]


async def test_a_ready_sms_slower_than_the_lease_is_sent_once(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    url = stores.new_database()
    timings = dataclasses.replace(
        FAST, lease_duration=dt.timedelta(milliseconds=300), notice_claim=dt.timedelta(seconds=10)
    )
    sent: list[str] = []

    def slow_sender(name: str) -> Callable[[QueryRecord], Awaitable[None]]:
        async def send(record: QueryRecord) -> None:
            await asyncio.sleep(1.5)  # five leases
            sent.append(name)

        return send

    async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path, database=url, timings=timings)
        async with running_engine(config, clock) as a, running_engine(config, clock) as b:
            a.add_ready_listener(slow_sender("A"))
            b.add_ready_listener(slow_sender("B"))
            query = new_query(rich_person(population, clock.now().date(), CODES, min_banks=1), CODES)
            await a.submit(query)
            await wait_for(a, query.query_id)
            await asyncio.sleep(3.0)  # each lease loop ran ~30 times meanwhile
    assert len(sent) == 1, sent
