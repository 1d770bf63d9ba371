"""Opening the store: the `database` setting picks the engine. A path
means SQLite (hub.store.sqlite: embedded, one hub process), a
`postgresql://` URL means PostgreSQL (hub.store.postgres: several hub
replicas share it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hub.store.postgres import PostgresDatabase
from hub.store.sqlite import SqliteDatabase
from hub.store.types import ConnectionSettings, Database


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
        return await PostgresDatabase.open(str(target), settings=settings, **options)
    return await SqliteDatabase.open(Path(target), **options)
