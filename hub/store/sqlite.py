"""The SQLite engine of the store (aiosqlite): the embedded default, for one
hub process.

- WAL journal, `secure_delete` on (deleted report bytes are overwritten),
  foreign keys on, `synchronous=FULL` (an acknowledged write survives a
  power cut; a hub killed with SIGKILL loses nothing it acknowledged).
- Writes are batched: every `write()` call is queued, and one writer task
  commits everything queued so far in a single transaction, each call inside
  its own SAVEPOINT so one failing call rolls back alone. Callers await their
  own commit, so "returned" means "durable". Under load many writes share one
  fsync, which keeps the store from being the bottleneck. One writer also
  means every write transaction runs alone: a check and its update commit
  together without row locks.
- One thread hop per batch, not per statement (issue 10): the whole batch
  runs on the writer connection's aiosqlite thread (one queued function,
  `Connection._execute`, pinned with aiosqlite's version), which drives each
  write callback to its end synchronously. The callbacks await their `Conn`
  (hub.store.types: `await conn.execute(...)`, `fetch_one`, ...), but on
  SQLite those awaits complete at once (sqlite3 is synchronous), so a
  callback must await nothing but `conn` (a callback
  that suspends fails with RuntimeError, and only its savepoint rolls back).
  A profile of the hub under load had put most of its time in the one hop
  per statement aiosqlite makes (about ten per bank outcome).
- Reads use a second connection (its own aiosqlite thread), so they never see a
  batch that has not committed; each read is one hop (execute, fetch and
  close together, so no read transaction stays open between reads).
- Notifications sent inside a write are delivered to this process's
  listeners once the batch has committed (only this process uses the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from cardlookup.private_files import ensure_private, private_dir
from hub.core.logging import get_logger
from hub.store.sql import split_sql
from hub.store.types import Conn, Notify, Row, StoreStats, WriteFn

T = TypeVar("T")
log = get_logger("hub.store")

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA secure_delete=ON",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=FULL",
)
BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for a lock another process holds on the file
(SQLite's busy timeout), then fails; the hub sets it from
`timings.database_command_timeout` (hub.store.factory), whose default this is."""
_LOCK_STRIPES = 64


class _SqliteConn:
    """The writer connection as a write callback sees it, on the writer's
    thread: statements run at once; notifications are collected until the
    batch commits."""

    skip_locked = ""
    for_update = ""

    def __init__(self, conn: sqlite3.Connection, stats: StoreStats) -> None:
        self._conn = conn
        self._stats = stats
        self.pending: list[tuple[str, str]] = []

    def _run(self, sql: str, params: Sequence[Any], read: Callable[[sqlite3.Cursor], T]) -> T:
        self._stats.statements += 1
        cur = self._conn.execute(sql, params)
        try:
            return read(cur)
        finally:
            cur.close()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._run(sql, params, lambda cur: cur.rowcount)

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self._run(sql, params, sqlite3.Cursor.fetchone)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._run(sql, params, sqlite3.Cursor.fetchall)

    async def fetch_val(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self._stats.statements += 1
        self._conn.executemany(sql, params)

    async def notify(self, channel: str, payload: str) -> None:
        self.pending.append((channel, payload))

    async def lock(self, key: str) -> None:
        """Nothing to do: the one writer runs each write transaction alone."""


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a write callback to its end on this thread. It awaits only
    `_SqliteConn` methods, which never suspend."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a SQLite write callback awaited something other than its connection")


_Outcome = tuple[Any, BaseException | None]


class SqliteDatabase:
    """One SQLite database file, opened for one hub process."""

    dialect = "sqlite"
    shared = False

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, max_batch: int) -> None:
        self._writer = writer
        self._reader = reader
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[WriteFn[Any], asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._listeners: dict[str, list[Notify]] = defaultdict(list)
        self._locks = tuple(asyncio.Lock() for _ in range(_LOCK_STRIPES))
        self.stats = StoreStats()
        self.batches_committed = 0
        """How many transactions the writer committed (for metrics and tests)."""

    @classmethod
    async def open(cls, path: Path | str, max_batch: int = 256, busy_timeout: float = BUSY_TIMEOUT) -> SqliteDatabase:
        private_dir(Path(path).parent)  # 0700 whatever the umask (issue 17)
        # The database holds sealed personal data and hashes: it, its WAL and
        # its shared-memory file are created 0600 before SQLite opens them
        # (SQLite creates -wal/-shm itself, with the main file's mode; making
        # all three here leaves no window with a wider mode).
        for suffix in ("", "-wal", "-shm"):
            ensure_private(f"{path}{suffix}")
        opened: list[aiosqlite.Connection] = []
        try:
            for _ in range(2):
                conn = await aiosqlite.connect(str(path), isolation_level=None)
                opened.append(conn)
                conn.row_factory = sqlite3.Row
                for pragma in (*_PRAGMAS, f"PRAGMA busy_timeout={max(1, round(busy_timeout * 1000))}"):
                    await conn.execute(pragma)
            writer, reader = opened
            await writer.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (component, version))"
            )
        except BaseException:
            # An unusable file (read-only, not a database): close what was
            # opened, or its threads would keep the process alive.
            for conn in opened:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        db = cls(writer, reader, max_batch)
        db._task = asyncio.create_task(db._write_loop(), name="db-writer")
        return db

    async def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Applies, in order, the scripts of `component` not applied yet."""
        rows = await self.fetch_all("SELECT version FROM schema_migrations WHERE component = ?", (component,))
        done = {row[0] for row in rows}
        for version, script in enumerate(migrations, start=1):
            if version in done:
                continue

            async def apply(conn: Conn, script: str = script, version: int = version) -> None:
                for statement in split_sql(script):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)", (component, version)
                )

            await self.write(apply)

    async def write(self, fn: WriteFn[T]) -> T:
        """Runs `fn` in the next write batch; returns once it is committed."""
        return await self._enqueue(fn)

    async def _enqueue(self, fn: WriteFn[T]) -> T:
        # `execute` and `write_one` come here too, not through `write`: the
        # metrics time each public method once (HubMetrics.instrument_database).
        if self._closed:
            raise RuntimeError("database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.stats.transactions += 1
        self._queue.put_nowait((fn, future))
        return await future

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Shorthand for a single-statement write."""

        async def run(conn: Conn) -> None:
            await conn.execute(sql, params)

        await self._enqueue(run)

    async def write_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """A single-statement write returning its first row (`RETURNING`)."""

        async def run(conn: Conn) -> sqlite3.Row | None:
            row: sqlite3.Row | None = await conn.fetch_one(sql, params)
            return row

        return await self._enqueue(run)

    def _read(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        cur = self._reader._conn.execute(sql, params)
        try:
            return cur.fetchone() if one else cur.fetchall()
        finally:
            cur.close()

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Reads the latest committed state (every completed write() included)."""
        self.stats.statements += 1
        return await self._reader._execute(self._read, sql, params, True)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> Sequence[sqlite3.Row]:
        """Reads the latest committed state (every completed write() included)."""
        self.stats.statements += 1
        rows: Sequence[sqlite3.Row] = await self._reader._execute(self._read, sql, params, False)
        return rows

    async def fetch_val(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of the latest committed state,
        or None."""
        self.stats.statements += 1
        row: sqlite3.Row | None = await self._reader._execute(self._read, sql, params, True)
        return None if row is None else row[0]

    async def listen(self, channel: str, callback: Notify) -> None:
        self._listeners[channel].append(callback)

    async def probe(self) -> None:
        """A one-row write through the batch (a page written and synced): it
        fails while the disk is full or the file read-only."""

        async def run(conn: Conn) -> None:
            await conn.execute("CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
            await conn.execute("INSERT INTO store_probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1")

        await self._enqueue(run)

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Only this process uses the file: an in-memory lock (striped) is
        exact here."""
        async with self._locks[hash(key) % _LOCK_STRIPES]:
            yield

    async def checkpoint(self) -> bool:
        """Copies the WAL into the database file and truncates it to zero
        bytes (issue 22: rows just erased, zeroed in the file by
        secure_delete, then leave no copy in the WAL either). Runs on the
        writer's thread between batches; False if a reader kept it from
        completing (the next checkpoint does it)."""
        async with self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
            row = await cur.fetchone()
        return row is not None and row[0] == 0

    async def close(self) -> None:
        """Commits what is queued, then closes both connections."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._reader.close()
        await self._writer.close()

    def _commit_batch(self, fns: list[WriteFn[Any]]) -> tuple[list[_Outcome], list[tuple[str, str]], bool]:
        """On the writer thread: one transaction, one savepoint per call."""
        writer = self._writer._conn
        conn = _SqliteConn(writer, self.stats)
        outcomes: list[_Outcome] = []
        try:
            writer.execute("BEGIN IMMEDIATE")
            for i, fn in enumerate(fns):
                writer.execute(f"SAVEPOINT w{i}")
                mark = len(conn.pending)
                try:
                    value: Any = _drive(fn(conn))
                except Exception as exc:  # one caller's failure must not spoil the batch
                    writer.execute(f"ROLLBACK TO w{i}")
                    del conn.pending[mark:]
                    outcomes.append((None, exc))
                else:
                    outcomes.append((value, None))
                writer.execute(f"RELEASE w{i}")
            writer.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nobody's write landed
            with contextlib.suppress(Exception):
                writer.execute("ROLLBACK")
            return [(None, exc) for _ in fns], [], False
        return outcomes, conn.pending, True

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes, pending, committed = await self._writer._execute(self._commit_batch, [fn for fn, _ in batch])
                self.batches_committed += committed
            except Exception as exc:  # the thread itself failed
                outcomes, pending = [(None, exc) for _ in batch], []
            for (_, future), (value, error) in zip(batch, outcomes, strict=True):
                if not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(value)
            for channel, payload in pending:
                for callback in list(self._listeners.get(channel, ())):
                    try:
                        callback(payload)
                    except Exception:
                        log.error("listener_failed", exc_info=True, channel=channel)
            for _ in batch:
                self._queue.task_done()
