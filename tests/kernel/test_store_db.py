"""The store's connection layer: durable batched writes, isolation of a
failing write, migrations applied once, secure_delete on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.store.db import Database

SCHEMA = ["CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)"]


async def test_concurrent_writes_share_transactions_and_all_land(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    await db.migrate("items", SCHEMA)
    await asyncio.gather(*(db.execute("INSERT INTO items VALUES (?, ?)", (i, f"x{i}")) for i in range(500)))
    row = await db.fetchone("SELECT COUNT(*) FROM items")
    assert row is not None and row[0] == 500
    assert db.batches_committed < 500  # batching happened: fewer commits than writes
    await db.close()


async def test_a_failing_write_rolls_back_alone(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    await db.migrate("items", SCHEMA)
    await db.execute("INSERT INTO items VALUES (1, 'a')")
    results = await asyncio.gather(
        db.execute("INSERT INTO items VALUES (2, 'b')"),
        db.execute("INSERT INTO items VALUES (1, 'duplicate')"),
        db.execute("INSERT INTO items VALUES (3, 'c')"),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    rows = await db.fetchall("SELECT id, label FROM items ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
    await db.close()


async def test_writes_survive_reopen_and_migrations_run_once(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    await db.migrate("items", SCHEMA)
    await db.execute("INSERT INTO items VALUES (1, 'a')")
    await db.close()
    again = await Database.open(tmp_path / "s.db")
    await again.migrate("items", [*SCHEMA, "ALTER TABLE items ADD COLUMN note TEXT"])
    row = await again.fetchone("SELECT label, note FROM items WHERE id = 1")
    assert row is not None and tuple(row) == ("a", None)
    secure = await again.fetchone("PRAGMA secure_delete")
    journal = await again.fetchone("PRAGMA journal_mode")
    assert secure is not None and secure[0] == 1
    assert journal is not None and journal[0] == "wal"
    await again.close()


async def test_closed_database_refuses_writes(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    await db.close()
    with pytest.raises(RuntimeError):
        await db.execute("SELECT 1")
