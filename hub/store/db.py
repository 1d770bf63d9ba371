"""The database layer every store module uses, on SQLite or PostgreSQL.

`open_database(target)` (hub.store.factory) picks the engine from the
`database` setting: a path means SQLite (hub.store.sqlite: embedded, one hub
process), a `postgresql://` URL means PostgreSQL (hub.store.postgres: several
hub replicas share it). Both offer the same interface, `Database`
(hub.store.types, which the engines import; this module re-exports it):

- `write(fn)`: runs `fn(conn)` in one transaction and returns once it is
  durable. `conn` is a `Conn`: the caller says what each statement gives
  back (`await conn.execute(sql, params)` -> rows changed, `fetch_one`,
  `fetch_all`, `fetch_val`; `executemany`), so store modules are written
  once, with `?` placeholders and portable SQL (hub.store.sql).
- `fetch_one` / `fetch_all` / `fetch_val`: read the latest committed state
  (the same names as on `Conn`).
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

from hub.core.database import ConnectionSettings, describe_target, is_postgres_url
from hub.store.factory import open_database
from hub.store.sql import split_sql
from hub.store.types import (
    Conn,
    Database,
    Notify,
    Row,
    StoreStats,
    WriteFn,
)

__all__ = [
    "Conn",
    "ConnectionSettings",
    "Database",
    "Notify",
    "Row",
    "StoreStats",
    "WriteFn",
    "describe_target",
    "from_micros",
    "from_micros_or_none",
    "is_postgres_url",
    "open_database",
    "split_sql",
    "to_micros",
]

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
