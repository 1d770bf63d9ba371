"""Which store engine a test's hub runs on: SQLite (the default) or a
throwaway PostgreSQL server (one per test run, a fresh database per test).

Test modules marked `pytest.mark.both_stores` run every test once per
engine (see tests/conftest.py); `database_for(data_dir)` is what their hub
configs use for the `database` setting.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import asyncpg

from cardlookup.devpg import ThrowawayPostgres

BACKENDS = ("sqlite", "postgresql")
current: str | None = None
"""The database URL of the running test on PostgreSQL, None on SQLite."""
_server: ThrowawayPostgres | None = None
_names = itertools.count(1)
_since_ns = 0
"""When the running test's database was created (stored_bytes)."""


def server() -> ThrowawayPostgres:
    """The run's PostgreSQL server, started on first use."""
    global _server
    if _server is None:
        _server = ThrowawayPostgres.start()
    return _server


def new_database() -> str:
    global _since_ns
    _since_ns = time.time_ns() - 1_000_000_000  # a second early: file times are coarser than the clock
    return server().create_database(f"t{next(_names)}")


def database_for(data_dir: Path) -> str | Path:
    return current if current is not None else data_dir / "hub.db"


async def stored_bytes(data_dir: Path) -> bytes:
    """Every byte the store has written so far, for privacy scans: the
    SQLite file and its WAL, or every file of the PostgreSQL server's data
    directory (tables and write-ahead log) written since this test's
    database was created, after a checkpoint: whatever this test wrote is
    there; other tests' databases, untouched since, are not scanned."""
    if current is None:
        db, wal = data_dir / "hub.db", data_dir / "hub.db-wal"
        return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    conn = await asyncpg.connect(current)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    files = [p for p in sorted(server().data.rglob("*")) if p.is_file() and p.stat().st_mtime_ns >= _since_ns]
    chunks = [p.read_bytes() for p in files]
    return b"".join(chunks)


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
