"""The store's connection layer on both engines: durable writes, isolation
of a failing write, migrations applied once (also by replicas starting
together), notifications after commit, the cross-replica exclusive lock;
and SQLite's own batching and pragmas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.store.db import Conn, Database, open_database
from tests import stores

SCHEMA = ["CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)"]


async def _open(tmp_path: Path) -> Database:
    return await open_database(stores.database_for(tmp_path))


@pytest.mark.both_stores
async def test_concurrent_writes_all_land(tmp_path: Path) -> None:
    db = await _open(tmp_path)
    await db.migrate("items", SCHEMA)
    await asyncio.gather(*(db.execute("INSERT INTO items VALUES (?, ?)", (i, f"x{i}")) for i in range(500)))
    row = await db.fetch_one("SELECT COUNT(*) FROM items")
    assert row is not None and row[0] == 500
    await db.close()


@pytest.mark.both_stores
async def test_reads_use_the_names_of_the_write_connection(tmp_path: Path) -> None:
    """`Database` reads as `Conn` does (fetch_one / fetch_all / fetch_val);
    fetch_val is None for no row and for NULL."""
    db = await _open(tmp_path)
    await db.migrate("items", SCHEMA)
    await db.execute("INSERT INTO items VALUES (?, ?)", (1, "a"))

    async def in_write(conn: Conn) -> tuple[object, ...]:
        return (await conn.fetch_val("SELECT label FROM items WHERE id = ?", (1,)),)

    assert await db.fetch_val("SELECT label FROM items WHERE id = ?", (1,)) == "a"
    assert await db.write(in_write) == ("a",)
    assert await db.fetch_val("SELECT label FROM items WHERE id = ?", (2,)) is None
    assert await db.fetch_val("SELECT MAX(id) FROM items WHERE id > ?", (5,)) is None
    assert [tuple(r) for r in await db.fetch_all("SELECT id, label FROM items")] == [(1, "a")]
    assert not hasattr(db, "fetchone") and not hasattr(db, "fetchall")
    await db.close()


async def test_sqlite_writes_share_transactions(tmp_path: Path) -> None:
    from hub.store.sqlite import SqliteDatabase

    db = await SqliteDatabase.open(tmp_path / "s.db")
    await db.migrate("items", SCHEMA)
    await asyncio.gather(*(db.execute("INSERT INTO items VALUES (?, ?)", (i, f"x{i}")) for i in range(500)))
    assert db.batches_committed < 500  # batching happened: fewer commits than writes
    await db.close()


async def test_a_sqlite_write_callback_that_suspends_fails_alone(tmp_path: Path) -> None:
    """The SQLite writer drives each callback on its own thread in one go
    (issue 10): a callback awaiting anything but its connection is refused
    with RuntimeError, its savepoint rolled back, the rest of the batch kept."""
    from hub.store.sqlite import SqliteDatabase

    db = await SqliteDatabase.open(tmp_path / "s.db")
    await db.migrate("items", SCHEMA)

    async def suspends(conn: Conn) -> None:
        await conn.execute("INSERT INTO items VALUES (9, 'never')")
        await asyncio.sleep(0)

    async def reads_its_own_write(conn: Conn) -> int:
        await conn.execute("INSERT INTO items VALUES (4, 'd')")
        return int(await conn.fetch_val("SELECT COUNT(*) FROM items WHERE id = 4"))

    results = await asyncio.gather(
        db.write(suspends),
        db.write(reads_its_own_write),
        db.execute("INSERT INTO items VALUES (5, 'e')"),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and results[1:] == [1, None]
    rows = await db.fetch_all("SELECT id FROM items ORDER BY id")
    assert [r[0] for r in rows] == [4, 5]
    await db.close()


@pytest.mark.both_stores
async def test_a_failing_write_rolls_back_alone(tmp_path: Path) -> None:
    db = await _open(tmp_path)
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
    rows = await db.fetch_all("SELECT id, label FROM items ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
    await db.close()


@pytest.mark.both_stores
async def test_write_callbacks_see_rowcounts_and_returning(tmp_path: Path) -> None:
    db = await _open(tmp_path)
    await db.migrate("items", SCHEMA)

    async def run(conn: Conn) -> tuple[int, int, list[tuple[object, ...]], object, object, object]:
        await conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, "a") for i in range(5)])
        changed = await conn.execute("UPDATE items SET label = ? WHERE id < ?", ("b", 3))
        none = await conn.execute("UPDATE items SET label = ? WHERE id > ?", ("c", 99))
        returning = await conn.fetch_all("UPDATE items SET label = ? WHERE id >= ? RETURNING id, label", ("d", 3))
        # The caller says what it reads: a leading comment, or the word
        # RETURNING inside a literal, changes nothing.
        one = await conn.fetch_one("-- the label of item 4\nSELECT label FROM items WHERE id = ?", (4,))
        literal = await conn.fetch_val("SELECT 'RETURNING ?' || label FROM items WHERE id = ?", (0,))
        missing = await conn.fetch_val("SELECT label FROM items WHERE id = ?", (99,))
        return changed, none, sorted(tuple(r) for r in returning), tuple(one or ()), literal, missing

    assert await db.write(run) == (3, 0, [(3, "d"), (4, "d")], ("d",), "RETURNING ?b", None)
    await db.close()


@pytest.mark.both_stores
async def test_migrations_translate_code_only(tmp_path: Path) -> None:
    """A leading comment, a `;` inside a literal and the words INTEGER and
    BLOB inside a CHECK's literals reach both engines as written; only the
    column types are PostgreSQL's."""
    db = await _open(tmp_path)
    script = """-- kinds; with a comment first
    CREATE TABLE kinds (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('INTEGER', 'a;b', 'BLOB?', 'it''s'))
    );
    INSERT INTO kinds VALUES (1, 'INTEGER'); INSERT INTO kinds VALUES (2, 'a;b');
    /* a block comment; */ INSERT INTO kinds VALUES (3, 'it''s')"""
    await db.migrate("kinds", [script])
    rows = await db.fetch_all("SELECT id, kind FROM kinds WHERE kind <> ? ORDER BY id", ("BLOB?",))
    assert [tuple(r) for r in rows] == [(1, "INTEGER"), (2, "a;b"), (3, "it's")]
    with pytest.raises(Exception, match=r"(?i)check constraint"):
        await db.execute("INSERT INTO kinds VALUES (4, 'BIGINT')")
    await db.close()


@pytest.mark.both_stores
async def test_writes_survive_reopen_and_migrations_run_once(tmp_path: Path) -> None:
    db = await _open(tmp_path)
    await db.migrate("items", SCHEMA)
    await db.execute("INSERT INTO items VALUES (1, 'a')")
    await db.close()
    again = await _open(tmp_path)
    await again.migrate("items", [*SCHEMA, "ALTER TABLE items ADD COLUMN note TEXT"])
    row = await again.fetch_one("SELECT label, note FROM items WHERE id = 1")
    assert row is not None and tuple(row) == ("a", None)
    await again.close()


@pytest.mark.both_stores
async def test_replicas_starting_together_migrate_once(tmp_path: Path, store_backend: str) -> None:
    if store_backend == "sqlite":
        pytest.skip("one process owns a SQLite file")
    dbs = [await _open(tmp_path) for _ in range(3)]
    await asyncio.gather(*(db.migrate("items", SCHEMA) for db in dbs))
    rows = await dbs[0].fetch_all("SELECT component, version FROM schema_migrations WHERE component = 'items'")
    assert [tuple(r) for r in rows] == [("items", 1)]
    for db in dbs:
        await db.close()


@pytest.mark.both_stores
async def test_notifications_reach_listeners_after_commit_only(tmp_path: Path, store_backend: str) -> None:
    writer = await _open(tmp_path)
    # On PostgreSQL a second connection set stands for another replica.
    other = await _open(tmp_path) if store_backend == "postgresql" else writer
    await writer.migrate("items", SCHEMA)
    got: list[str] = []
    arrived = asyncio.Event()

    def on(payload: str) -> None:
        got.append(payload)
        arrived.set()

    await other.listen("items", on)

    async def failing(conn: object) -> None:
        await conn.notify("items", "rolled-back")  # type: ignore[attr-defined]
        raise ValueError("abort")

    with pytest.raises(ValueError):
        await writer.write(failing)

    async def ok(conn: object) -> None:
        await conn.execute("INSERT INTO items VALUES (1, 'a')")  # type: ignore[attr-defined]
        await conn.notify("items", "committed")  # type: ignore[attr-defined]

    await writer.write(ok)
    await asyncio.wait_for(arrived.wait(), 5)
    assert got == ["committed"]
    for db in {id(writer): writer, id(other): other}.values():
        await db.close()


@pytest.mark.both_stores
async def test_exclusive_serialises_a_key_across_connections(tmp_path: Path, store_backend: str) -> None:
    dbs = [await _open(tmp_path) for _ in range(2 if store_backend == "postgresql" else 1)]
    inside = 0
    overlaps = 0

    async def critical(db: Database) -> None:
        nonlocal inside, overlaps
        async with db.exclusive("person-1"):
            inside += 1
            overlaps += inside > 1
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(critical(dbs[i % len(dbs)]) for i in range(10)))
    assert overlaps == 0
    for db in dbs:
        await db.close()


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "s.db")
    secure = await db.fetch_one("PRAGMA secure_delete")
    journal = await db.fetch_one("PRAGMA journal_mode")
    assert secure is not None and secure[0] == 1
    assert journal is not None and journal[0] == "wal"
    await db.close()


@pytest.mark.both_stores
async def test_closed_database_refuses_writes(tmp_path: Path) -> None:
    db = await _open(tmp_path)
    await db.close()
    with pytest.raises(RuntimeError):
        await db.execute("SELECT 1")


async def test_postgres_listening_survives_a_lost_connection(tmp_path: Path) -> None:
    """A failover or restart drops the listening connection: it comes back,
    and those who cache what notifications tell are told to re-read."""
    import asyncpg

    url = stores.new_database()
    db = await open_database(url)
    got: list[str] = []
    reconnected = asyncio.Event()
    db.add_reconnect_listener(reconnected.set)  # type: ignore[attr-defined]
    await db.listen("items", got.append)
    admin = await asyncpg.connect(url)
    try:
        killed = await admin.fetchval(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert killed == 1
        await asyncio.wait_for(reconnected.wait(), 10)
        await admin.execute("SELECT pg_notify('items', 'after')")
        async with asyncio.timeout(5):
            while not got:  # noqa: ASYNC110 - the notification arrives on the database's own connection
                await asyncio.sleep(0.02)
        assert got == ["after"]
    finally:
        await admin.close()
        await db.close()
