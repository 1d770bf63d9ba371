"""Opening the store: the `database` setting picks the engine. A path
means SQLite (hub.store.sqlite: embedded, one hub process), a
`postgresql://` URL means PostgreSQL (hub.store.postgres: several hub
replicas share it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.core.database import ConnectionSettings, is_postgres_url
from hub.store.postgres import PostgresDatabase
from hub.store.sqlite import SqliteDatabase
from hub.store.types import Database


async def open_database(target: str | Path, settings: ConnectionSettings | None = None, **options: Any) -> Database:
    """SQLite for a path, PostgreSQL for a postgresql:// URL, with `settings`
    (of SQLite's, only `command_timeout`: its busy timeout)."""
    if is_postgres_url(target):
        return await PostgresDatabase.open(str(target), settings=settings, **options)
    if settings is not None:
        options.setdefault("busy_timeout", settings.command_timeout)
    return await SqliteDatabase.open(Path(target), **options)
