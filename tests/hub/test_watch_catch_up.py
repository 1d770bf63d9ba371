"""A watcher whose progress events lag behind the store (issue 10: with the
faster fan-out a query can be READY before its first outcome is published)
gets the READY record as a whole snapshot, not labelled as one changed bank
(the API would then send only that bank's outcome, and the app backend would
see a READY query with its other banks still pending)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.domain import BankState, QueryEvent, QueryState
from tests.hub.helpers import fleet_config, hub_config, new_query, rich_person, running_engine, running_fleet, wait_for

CODES = list(DEFAULT_BANK_CODES[:6])


async def test_an_outcome_published_after_ready_carries_the_whole_record(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = rich_person(population, clock.now().date(), CODES)
    async with (
        running_fleet(fleet_config(pki, population, clock, CODES)) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        query = new_query(person, CODES)
        await engine.submit(query)
        ready = await wait_for(engine, query.query_id)
        assert all(b.state == BankState.ANSWERED for b in ready.banks)
        # A watcher registered while the first outcome's notification
        # was still queued: publishing it now finds the store READY.
        queue: asyncio.Queue[QueryEvent] = asyncio.Queue()
        engine._watch.watchers[query.query_id] = {queue}
        first = ready.banks[0]
        await engine._watch.publish(query.query_id, first, QueryState.RUNNING)
        event = queue.get_nowait()
        assert event.query.state == QueryState.READY
        assert event.changed_bank_code is None  # a whole snapshot, not "bank 0 changed"
        assert all(b.state == BankState.ANSWERED for b in event.query.banks)
