"""A replica that gets back a bank task's lease while its old task for that
bank has not ended yet (it lost the lease mid-call, was cancelled, and then
won the lease again in the same lease round) runs the task under the new
lease. Found by the replica demo on a loaded machine: the new claim was
dropped because the old task was still running, the replica went on
renewing a lease with no task behind it, and the query never became READY."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from bank_sim.faults import Faults
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.domain import BankState
from hub.store.bank_health import wall_us
from hub.store.db import open_database
from hub.store.queries import QueryStore
from tests import stores
from tests.hub.helpers import (
    assert_report_is_ground_truth,
    fleet_config,
    hub_config,
    new_query,
    rich_person,
    running_engine,
    running_fleet,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.slow

CODES = ["102", "103"]


async def test_a_lease_won_back_while_the_old_task_runs_is_worked_on(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    person = rich_person(population, clock.now().date(), CODES, min_banks=1)
    faults = {"102": Faults(latency=1.0)}
    async with running_fleet(fleet_config(pki, population, clock, CODES, faults)) as fleet:
        # PostgreSQL: on SQLite the one process re-claims every lease each
        # round, which hid the dropped claim after one lease period.
        config = hub_config(pki, fleet.addresses, tmp_path, database=stores.new_database())
        async with running_engine(config, clock) as engine:
            query = new_query(person, CODES)
            await engine.submit(query)
            await wait_until(lambda: fleet.call_count("102") == 1)  # the call is in flight (1 s)
            async with asyncio.timeout(10):
                while (await engine.get(query.query_id)).banks[1].state == BankState.PENDING:  # type: ignore[union-attr]  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            # Another replica takes the lease over and then loses it (its
            # lease already ran out): the engine's next round cancels its
            # call (lease lost) and claims the task back, at a new epoch.
            db = await open_database(config.database)
            try:
                stolen = await QueryStore(db).claim("another-replica", 2**62, wall_us() - 1, 10)
            finally:
                await db.close()
            assert [(c.bank_code, c.epoch) for c in stolen] == [("102", 2)]
            await engine._housekeeping()  # one lease round, as the lease loop runs it
            record = await wait_for(engine, query.query_id, within=15)
            report = await engine.read_report(query.query_id)
        assert_report_is_ground_truth(report, population, person, CODES)
        assert [b.attempt_count for b in record.banks] == [2, 1]
        assert fleet.overlaps("102") == 0
