"""The store's interface, shared by both engines (hub.store.sqlite,
hub.store.postgres), the factory that picks one (hub.store.factory) and
every store module: `Database`, the `Conn` a write callback gets, and the
small values around them. It imports no engine.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

Notify = Callable[[str], None]
"""A notification callback: gets the payload, runs on the event loop."""

Row = Any
"""A result row: sqlite3.Row or asyncpg.Record, both read by position and
by column name."""


class Conn(Protocol):
    """The connection a write callback gets, inside its transaction. The
    caller says what it wants back: the rows a statement changed
    (`execute`), its first row (`fetch_one`), all of them (`fetch_all`) or
    the first column of the first row (`fetch_val`); DML with RETURNING is
    read with the fetch methods. Store SQL has `?` placeholders
    (hub.store.sql translates them for PostgreSQL)."""

    skip_locked: str
    """' FOR UPDATE SKIP LOCKED' on PostgreSQL, '' on SQLite (whose one
    writer serialises every write transaction anyway)."""
    for_update: str
    """' FOR UPDATE' on PostgreSQL (a check-then-update locks its row
    first), '' on SQLite."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs a statement; returns how many rows it changed."""
        ...

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None: ...
    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    async def fetch_val(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None without a row."""
        ...

    async def notify(self, channel: str, payload: str) -> None: ...
    async def lock(self, key: str) -> None:
        """Serialises transactions on `key` until this one ends."""
        ...


WriteFn = Callable[[Conn], Coroutine[Any, Any, T]]
"""A write callback (an `async def`): runs inside one transaction."""


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

    async def write(self, fn: WriteFn[T]) -> T: ...
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    async def write_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement that writes and returns its first row (`RETURNING`)
        or None, committed on its own: on PostgreSQL one round trip (no
        BEGIN/COMMIT), on SQLite part of the next write batch."""
        ...

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any]: ...
    async def fetch_val(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None (no row, or NULL)."""
        ...

    async def migrate(self, component: str, migrations: Sequence[str]) -> None: ...
    async def listen(self, channel: str, callback: Notify) -> None: ...
    def exclusive(self, key: str) -> AbstractAsyncContextManager[None]: ...
    async def probe(self) -> None:
        """A cheap write that needs a database accepting writes (raises
        otherwise): the store-health probe (hub.store.health) runs it while
        the engine's writes have been failing."""
        ...

    async def close(self) -> None: ...
