"""What the `database` setting names, for the configuration and the store
alike: which engine a target means, how to show it without its password,
and how a PostgreSQL connection notices a database that went away. Below
the store (hub.store.factory opens what this describes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


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


@dataclass(frozen=True)
class ConnectionSettings:
    """How a PostgreSQL store notices a database that went away (issue 21):
    a failover, or a primary whose machine vanished without a FIN or RST.
    The hub fills it from `[timings]` (docs/configuration.md, `database_*`);
    the defaults are the same. SQLite uses `command_timeout` alone, as its
    busy timeout."""

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
    connection is dropped, not reused, and the write is retried by its caller.
    SQLite: how long a statement waits for a lock another process holds on
    the file (its busy timeout) before it fails."""
    listen_check_interval: float = 5.0
    """Seconds between round trips on the listening connection (LISTEN has
    no traffic of its own when nothing is notified): one unanswered within
    `command_timeout` means the peer is gone, and it is reopened."""
