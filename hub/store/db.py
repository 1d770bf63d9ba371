"""The database layer every store module uses, on SQLite or PostgreSQL.

`open_database(target)` picks the engine from the `database` setting: a
path means SQLite (hub.store.sqlite: embedded, one hub process), a
`postgresql://` URL means PostgreSQL (hub.store.postgres: several hub
replicas share it). Both offer the same interface, `Database`:

- `write(fn)`: runs `fn(conn)` in one transaction and returns once it is
  durable. `conn` has the aiosqlite call shapes (`await conn.execute(sql,
  params)` -> cursor with `rowcount`, `fetchone()`, `fetchall()`;
  `async with conn.execute(...) as cur`; `executemany`), so store modules
  are written once, with `?` placeholders and portable SQL.
- `fetchone` / `fetchall`: read the latest committed state.
- `migrate(component, scripts)`: the same migration scripts on both engines
  (hub.store.sql translates column types and placeholders); applied once,
  even when several replicas start together.
- `listen(channel, callback)` and `conn.notify(channel, payload)`: a
  notification sent inside a write reaches every listener, in every process
  sharing the database, after the write commits (PostgreSQL LISTEN/NOTIFY;
  in-process on SQLite). The engine's WatchQuery rides on it.
- `exclusive(key)`: a lock held in the database for a critical section that
  spans several statements (one CreateQuery per person at a time, R12),
  across every replica; released if its holder dies.
- `shared`: True when other processes may use the same database (then rules
  such as a bank's concurrency cap are held in the database, not in memory).

Every store module keeps instants as INTEGER microseconds since the Unix
epoch (UTC), through `to_micros` and `from_micros`: exact, and ordered by SQL
comparison on both engines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

Notify = Callable[[str], None]
"""A notification callback: gets the payload, runs on the event loop."""


class Cursor(Protocol):
    rowcount: int

    async def fetchone(self) -> Any: ...
    async def fetchall(self) -> Sequence[Any]: ...


class Conn(Protocol):
    """The connection a write callback gets: aiosqlite's call shapes."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Awaitable (-> Cursor) and usable as `async with ... as cursor`."""
        ...

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None: ...
    def notify(self, channel: str, payload: str) -> Awaitable[None]: ...
    def lock(self, key: str) -> Awaitable[None]:
        """Serialises transactions on `key` until this one ends."""
        ...

    @property
    def skip_locked(self) -> str:
        """' FOR UPDATE SKIP LOCKED' on PostgreSQL, '' on SQLite (whose one
        writer serialises every write transaction anyway)."""
        ...

    @property
    def for_update(self) -> str:
        """' FOR UPDATE' on PostgreSQL (a check-then-update locks its row
        first), '' on SQLite."""
        ...


@dataclass
class StoreStats:
    """Counts for the benchmark and docs/deployment.md: statements sent by
    the store modules (reads and writes; transaction control and LISTEN
    plumbing excluded) and write transactions (one per `write()`)."""

    statements: int = 0
    transactions: int = 0


class Database(Protocol):
    dialect: str
    shared: bool
    stats: StoreStats

    async def write(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    async def write_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement that writes and returns its first row (`RETURNING`)
        or None, committed on its own: on PostgreSQL one round trip (no
        BEGIN/COMMIT), on SQLite part of the next write batch."""
        ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any]: ...
    async def migrate(self, component: str, migrations: Sequence[str]) -> None: ...
    async def listen(self, channel: str, callback: Notify) -> None: ...
    def exclusive(self, key: str) -> AbstractAsyncContextManager[None]: ...
    async def probe(self) -> None:
        """A cheap write that needs a database accepting writes (raises
        otherwise): the store-health probe (hub.store.health) runs it while
        the engine's writes have been failing."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ConnectionSettings:
    """How a PostgreSQL store notices a database that went away (issue 21):
    a failover, or a primary whose machine vanished without a FIN or RST.
    The hub fills it from `[timings]` (docs/configuration.md, `database_*`);
    the defaults are the same. SQLite ignores it."""

    keepalive_idle: float = 10.0
    """Seconds a connection may be silent before the kernel sends a TCP
    keepalive probe."""
    keepalive_interval: float = 5.0
    """Seconds between unanswered keepalive probes."""
    keepalive_count: int = 3
    """Unanswered probes after which the kernel drops the connection. The
    same total (idle + interval x count) bounds unacknowledged data
    (TCP_USER_TIMEOUT): keepalives alone never fire while data is in flight."""
    command_timeout: float = 10.0
    """Seconds one statement (and one connection attempt) may take; then the
    connection is dropped, not reused, and the write is retried by its caller."""
    listen_check_interval: float = 5.0
    """Seconds between round trips on the listening connection (LISTEN has
    no traffic of its own when nothing is notified): one unanswered within
    `command_timeout` means the peer is gone, and it is reopened."""


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def describe_target(target: str | Path) -> str:
    """The database setting for messages: a URL without its password."""
    if not is_postgres_url(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def open_database(target: str | Path, settings: ConnectionSettings | None = None, **options: Any) -> Database:
    """SQLite for a path, PostgreSQL for a postgresql:// URL (with `settings`,
    which SQLite ignores)."""
    if is_postgres_url(target):
        from hub.store.postgres import PostgresDatabase

        return await PostgresDatabase.open(str(target), settings=settings, **options)
    from hub.store.sqlite import SqliteDatabase

    return await SqliteDatabase.open(Path(target), **options)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_micros(t: dt.datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (UTC)."""
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def from_micros_or_none(value: int | None) -> dt.datetime | None:
    return None if value is None else from_micros(value)


def split_sql(script: str) -> list[str]:
    """Splits a migration script on ';' (migrations hold no ';' in literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]
