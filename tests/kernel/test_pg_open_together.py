"""Replicas opening a fresh PostgreSQL database at the same moment all
start (found by `python -m bench.replica_watch`: two replicas started
together and one died on a unique violation in pg_type, because
CREATE TABLE IF NOT EXISTS schema_migrations is not atomic)."""

from __future__ import annotations

import asyncio

from hub.store.db import open_database
from tests import stores

TOGETHER = 12


async def test_replicas_opening_a_fresh_database_together_all_start() -> None:
    for _ in range(3):  # a race: a few fresh databases
        url = stores.new_database()
        dbs = await asyncio.gather(*(open_database(url) for _ in range(TOGETHER)), return_exceptions=True)
        failures = [d for d in dbs if isinstance(d, BaseException)]
        for d in dbs:
            if not isinstance(d, BaseException):
                await d.close()
        assert failures == []
