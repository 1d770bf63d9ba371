"""Reads see every completed write, even under a storm of overlapping reads
(a regression: overlapping cursors on one connection kept an old snapshot)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.store.db import open_database
from tests import stores


@pytest.mark.both_stores
async def test_a_read_after_a_write_sees_it_while_other_reads_overlap(tmp_path: Path) -> None:
    db = await open_database(stores.database_for(tmp_path))
    try:
        await db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        await db.execute("INSERT INTO t (k, v) VALUES (1, 0)")
        await db.execute("INSERT INTO t (k, v) SELECT k + 1, 0 FROM t")
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                await db.fetch_all("SELECT * FROM t")

        readers = [asyncio.create_task(reader()) for _ in range(20)]
        try:
            for value in range(1, 60):
                await db.execute("UPDATE t SET v = ? WHERE k = 1", (value,))
                row = await db.fetch_one("SELECT v FROM t WHERE k = 1")
                assert row is not None and row[0] == value
        finally:
            stop.set()
            await asyncio.gather(*readers)
    finally:
        await db.close()
