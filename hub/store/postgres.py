"""The PostgreSQL engine of the store (asyncpg): several hub replicas share
one database.

Why asyncpg: measured on this machine with `python -m bench.pgdriver` (the
fan-out's per-outcome transaction, 3,200 of them, 10 at a time, one
throwaway durable server), asyncpg 0.32 did 648 transactions/s at 1.0 ms
of client CPU each, psycopg 3.3 (async, binary, psycopg-pool) 447/s at
1.3 ms: 1.45x the throughput for 0.76x the hub's CPU.

- Each `write(fn)` is one READ COMMITTED transaction on a pooled
  connection. Rules that check then act take row locks (`SELECT ... FOR
  UPDATE`, or `conn.skip_locked` for work queues) or an advisory lock
  (`exclusive`), so they hold across replicas exactly as they do in one
  process. A transaction that hits a serialization failure or a deadlock is
  retried whole (write callbacks only touch the database, so re-running
  them is safe).
- Notifications (`conn.notify`) are `pg_notify` inside the transaction:
  PostgreSQL delivers them on commit, to every replica's listening
  connection.
- `exclusive(key)` takes a session advisory lock on a connection of a
  separate small pool, so a holder that needs pooled connections for its
  own writes can never starve itself; the lock goes if the replica dies.
- Migrations run under a transaction-level advisory lock: replicas that
  start together apply each script once.
- Dead peers (issue 21): every connection has TCP keepalives and a user
  timeout set in seconds, every statement a command timeout; a connection
  whose statement timed out or whose socket failed is dropped, never
  returned to the pool (its protocol state is unknown). The listening
  connection gets a round trip every `listen_check_interval`, so a primary
  that vanished without a FIN or RST is noticed even when nothing is
  notified. All from `ConnectionSettings` (hub.store.db).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import asyncpg

from hub.core.backoff import Backoff
from hub.core.database import ConnectionSettings
from hub.store.pg_listen import PgListener, set_keepalive
from hub.store.sql import ddl_to_postgres, split_sql, to_postgres
from hub.store.types import Notify, Row, StoreStats, WriteFn

T = TypeVar("T")

_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
_MAX_TRIES = 8
_TX_RETRY = Backoff(initial=0.002, maximum=0.016, multiplier=2.0, jitter=0.5)
"""Seconds before re-running a transaction that hit a serialization failure
or a deadlock: 2 ms doubling, at most 16 ms, half of it random so that the
transactions that collided do not collide again."""
_MIGRATION_LOCK = 0x63617264  # "card"
_MIGRATION_TIMEOUT = 3600.0
"""Seconds a migration statement may take (an index on a large table)."""
_DEAD = (TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError)
"""Errors after which a connection's state is unknown: it is dropped."""


def _rowcount(status: str) -> int:
    """asyncpg's command tag ("UPDATE 3", "INSERT 0 1") -> rows affected."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgConn:
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"

    def __init__(self, conn: Any, stats: StoreStats) -> None:
        self._conn = conn  # a pooled asyncpg connection
        self._stats = stats

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._stats.statements += 1
        return _rowcount(await self._conn.execute(to_postgres(sql), *params))

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._stats.statements += 1
        return await self._conn.fetchrow(to_postgres(sql), *params)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._stats.statements += 1
        return list(await self._conn.fetch(to_postgres(sql), *params))

    async def fetch_val(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._stats.statements += 1
        return await self._conn.fetchval(to_postgres(sql), *params)

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self._stats.statements += 1
        await self._conn.executemany(to_postgres(sql), list(params))

    async def notify(self, channel: str, payload: str) -> None:
        self._stats.statements += 1
        await self._conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def lock(self, key: str) -> None:
        """A transaction-level advisory lock on `key`: a check-then-insert
        with no row to lock yet (an SMS rate limit) runs alone per key."""
        await self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


async def _session_kept(_conn: asyncpg.Connection) -> None:
    """The main pool's release step: nothing to send. asyncpg's default
    resets every released connection with a round trip of its own
    (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`), one per
    read or write; nothing here leaves session state behind (advisory locks
    are transaction-level, LISTEN has its own connection, `exclusive` its
    own pool, which keeps the default reset), and asyncpg still rolls back
    a transaction left open. With the slots' single-statement writes it
    took a 16-bank query from about 350 round trips to about 160 (issue 10;
    docs/benchmarks.md, "PostgreSQL round trips")."""


class PostgresDatabase:
    dialect = "postgresql"
    shared = True

    def __init__(
        self, url: str, pool: asyncpg.Pool, locks: asyncpg.Pool, settings: ConnectionSettings | None = None
    ) -> None:
        self._url = url
        self._settings = settings or ConnectionSettings()
        self._pool = pool
        self._locks = locks
        self._listener = PgListener(url, self._settings, self._expire_all)
        self.stats = StoreStats()
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, pool_size: int = 10, lock_pool_size: int = 32, settings: ConnectionSettings | None = None
    ) -> PostgresDatabase:
        settings = settings or ConnectionSettings()

        async def init(conn: asyncpg.Connection) -> None:
            set_keepalive(conn, settings)

        timeout = settings.command_timeout
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=pool_size,
            reset=_session_kept,
            command_timeout=timeout,
            timeout=timeout,
            init=init,
        )
        try:
            locks = await asyncpg.create_pool(
                url, min_size=0, max_size=lock_pool_size, command_timeout=timeout, timeout=timeout, init=init
            )
        except BaseException:
            await pool.close()
            raise
        db = cls(url, pool, locks, settings)

        async def create(raw: asyncpg.Connection) -> None:
            # Under the migration lock: CREATE TABLE IF NOT EXISTS is not
            # atomic, and replicas starting together would race on it
            # (unique violation in pg_type) and one of them would not start.
            await raw.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (component, version))"
            )

        await db._transaction(create)
        return db

    async def migrate(self, component: str, migrations: Sequence[str]) -> None:
        async def run(raw: asyncpg.Connection) -> None:
            # Migrations: raw statements, not counted.
            await raw.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            rows = await raw.fetch("SELECT version FROM schema_migrations WHERE component = $1", component)
            done = {int(r[0]) for r in rows}
            for version, script in enumerate(migrations, start=1):
                if version in done:
                    continue
                for statement in split_sql(script):
                    await raw.execute(ddl_to_postgres(statement), timeout=_MIGRATION_TIMEOUT)
                await raw.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES ($1, $2)", component, version
                )

        await self._transaction(run)

    @contextlib.asynccontextmanager
    async def _acquired(self, pool: asyncpg.Pool | None = None) -> AsyncIterator[Any]:
        """A pooled connection; dropped instead of returned when what ran on
        it timed out or lost its socket (a black-holed peer would otherwise
        be handed to the next caller, still waiting for the last answer).
        Such a connection also expires every other one of both pools: the
        idle ones most likely lead to the same vanished server, and each
        would cost its next caller a command timeout. They are replaced on
        their next use."""
        if self._closed:
            raise RuntimeError("database is closed")
        pool = pool or self._pool
        raw = await pool.acquire()  # a new connection's attempt is bounded by the pool's `timeout`
        try:
            yield raw
        except BaseException as error:
            if isinstance(error, _DEAD):
                raw.terminate()
                await self._expire_all()
            elif isinstance(error, asyncio.CancelledError):
                raw.terminate()  # cancelled mid-statement: its protocol state is unknown
            raise
        finally:
            with contextlib.suppress(TimeoutError, OSError, asyncpg.InterfaceError):
                # An expired connection is closed on release; a silent peer never confirms it.
                await pool.release(raw, timeout=self._settings.command_timeout)

    async def _expire_all(self) -> None:
        for pool in (self._pool, self._locks):
            await pool.expire_connections()

    async def write(self, fn: WriteFn[T]) -> T:
        return await self._transaction(lambda raw: fn(_PgConn(raw, self.stats)))

    async def _transaction(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`fn(raw connection)` in one transaction, retried whole after a
        serialization failure or a deadlock."""
        if self._closed:
            raise RuntimeError("database is closed")
        for attempt in range(1, _MAX_TRIES + 1):
            try:
                self.stats.transactions += 1
                async with self._acquired() as raw:
                    tx = raw.transaction()
                    await tx.start()
                    try:
                        result = await fn(raw)
                    except BaseException as error:
                        if not isinstance(error, (*_DEAD, asyncio.CancelledError)):
                            await tx.rollback()
                        raise
                    await tx.commit()
                    return result
            except _RETRYABLE:
                if attempt == _MAX_TRIES:
                    raise
                await asyncio.sleep(_TX_RETRY.delay(attempt))
        raise AssertionError("unreachable")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.stats.statements += 1
        self.stats.transactions += 1
        async with self._acquired() as raw:
            await raw.execute(to_postgres(sql), *params)

    async def write_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Autocommit: the statement is its own transaction, one round trip
        instead of BEGIN, statement, COMMIT (issue 10)."""
        self.stats.statements += 1
        self.stats.transactions += 1
        async with self._acquired() as raw:
            return await raw.fetchrow(to_postgres(sql), *params)

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.stats.statements += 1
        async with self._acquired() as raw:
            return await raw.fetchrow(to_postgres(sql), *params)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any]:
        self.stats.statements += 1
        async with self._acquired() as raw:
            return await raw.fetch(to_postgres(sql), *params)

    async def fetch_val(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.stats.statements += 1
        async with self._acquired() as raw:
            return await raw.fetchval(to_postgres(sql), *params)

    async def probe(self) -> None:
        """Assigns a transaction id: a write in miniature (a commit record in
        the WAL) that a standby or a read-only primary refuses, without
        touching a table. Not counted in `stats`."""
        async with self._acquired() as raw:
            await raw.fetchval("SELECT txid_current()")

    async def listen(self, channel: str, callback: Notify) -> None:
        """Registers a callback; returns once the channel is listened to (a
        notification committed after that reaches it)."""
        await self._listener.listen(channel, callback)

    def add_reconnect_listener(self, callback: Callable[[], None]) -> None:
        """Told after the listening connection was lost and is back (a
        database failover, a restart): notifications sent meanwhile were
        missed, so caches fed by them must re-read the store."""
        self._listener.add_reconnect_listener(callback)

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        async with self._acquired(self._locks) as raw:
            await raw.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
            try:
                yield
            finally:
                await raw.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._listener.close()
        for pool in (self._locks, self._pool):
            try:
                await asyncio.wait_for(pool.close(), self._settings.command_timeout)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                pool.terminate()  # a connection whose peer is gone never says goodbye
