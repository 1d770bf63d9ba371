"""The listening side of the PostgreSQL store (hub.store.postgres): one
connection of its own that LISTENs on every channel a caller registered,
kept alive across a failover.

- It is opened on the first `listen`; each channel is LISTENed once.
- Dead peers (issue 21): TCP keepalives and a user timeout on its socket
  (`set_keepalive`, also used for the pools' connections), and a round trip
  every `listen_check_interval`, so a primary that vanished without a FIN
  or RST is noticed even when nothing is notified.
- A lost connection is reopened and every channel re-listened; then the
  reconnect listeners are told (notifications sent meanwhile were missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable

import asyncpg

from hub.core.backoff import Backoff
from hub.core.database import ConnectionSettings
from hub.core.logging import get_logger
from hub.store.types import Notify

log = get_logger("hub.store")

RELISTEN_BACKOFF = Backoff(initial=0.1, maximum=5.0, multiplier=2.0, jitter=0.0)
"""Seconds between attempts to re-listen after the listening connection was
lost: 0.1, doubling, at most 5."""


def set_keepalive(conn: asyncpg.Connection, settings: ConnectionSettings) -> None:
    """TCP keepalives and a user timeout on `conn`'s socket (Linux names;
    skipped where the platform lacks them). libpq's `keepalives_*` URL
    parameters do not reach asyncpg, which sends unknown URL parameters to
    the server as settings."""
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", settings.keepalive_idle),
        ("TCP_KEEPINTVL", settings.keepalive_interval),
        ("TCP_KEEPCNT", settings.keepalive_count),
    ):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), max(1, int(value)))
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        total = settings.keepalive_idle + settings.keepalive_interval * settings.keepalive_count
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(total * 1000))


class PgListener:
    def __init__(self, url: str, settings: ConnectionSettings, expire_all: Callable[[], Awaitable[None]]) -> None:
        self._url = url
        self._settings = settings
        self._expire_all = expire_all
        """Expires the pools' connections (they likely lead to the same vanished server)."""
        self._listen_check: asyncio.Task[None] | None = None
        self._listen_conn: asyncpg.Connection | None = None
        self._listeners: dict[str, list[Notify]] = defaultdict(list)
        self._subscribed: set[str] = set()
        self._subscribe_lock = asyncio.Lock()
        self._reconnect_listeners: list[Callable[[], None]] = []
        self._closed = False

    async def listen(self, channel: str, callback: Notify) -> None:
        self._listeners[channel].append(callback)
        await self._subscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        async with self._subscribe_lock:
            if self._closed:
                return
            if channel in self._subscribed:
                return
            if self._listen_conn is None:
                conn = await asyncpg.connect(
                    self._url, timeout=self._settings.command_timeout, command_timeout=self._settings.command_timeout
                )
                set_keepalive(conn, self._settings)
                conn.add_termination_listener(self._listen_lost)
                self._listen_conn = conn
                if self._listen_check is None or self._listen_check.done():
                    self._listen_check = asyncio.get_running_loop().create_task(self._check_listen_conn())
            await self._listen_conn.add_listener(channel, self._dispatch)
            self._subscribed.add(channel)

    def add_reconnect_listener(self, callback: Callable[[], None]) -> None:
        """Told after the listening connection was lost and is back (a
        database failover, a restart): notifications sent meanwhile were
        missed, so caches fed by them must re-read the store."""
        self._reconnect_listeners.append(callback)

    async def _check_listen_conn(self) -> None:
        """A round trip on the listening connection every
        `listen_check_interval`: LISTEN alone sends nothing while nothing is
        notified, so a peer that vanished silently would go unnoticed, and
        every notification after the failover missed. An unanswered round
        trip drops the connection; `_listen_lost` then re-listens."""
        interval = self._settings.listen_check_interval
        while not self._closed:
            await asyncio.sleep(interval)
            conn = self._listen_conn
            if conn is None or conn.is_closed():
                continue
            try:
                await conn.fetchval("SELECT 1", timeout=self._settings.command_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if conn is not self._listen_conn:
                    continue
                log.warning("listen_connection_silent", error=type(error).__name__)
                await self._expire_all()  # the pools' idle connections likely lead there too
                conn.terminate()  # runs the termination listener: _listen_lost
                if self._listen_conn is conn:  # no listener call (already closed)
                    self._listen_lost(conn)

    def _listen_lost(self, conn: object) -> None:
        if self._closed or conn is not self._listen_conn:
            return
        log.warning("listen_connection_lost")
        self._listen_conn = None
        channels, self._subscribed = set(self._subscribed), set()
        asyncio.get_running_loop().create_task(self._relisten(channels))

    async def _relisten(self, channels: set[str]) -> None:
        failures = 0
        while not self._closed:
            try:
                for channel in sorted(channels):
                    await self._subscribe(channel)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn, self._listen_conn = self._listen_conn, None
                if conn is not None:
                    conn.terminate()  # not close(): a silent peer would never answer it
                self._subscribed = set()
                failures += 1
                await asyncio.sleep(RELISTEN_BACKOFF.delay(failures))
                continue
            log.info("listen_connection_restored")
            for callback in list(self._reconnect_listeners):
                try:
                    callback()
                except Exception:
                    log.error("reconnect_listener_failed", exc_info=True)
            return

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for callback in list(self._listeners.get(channel, ())):
            try:
                callback(str(payload))
            except Exception:
                log.error("listener_failed", exc_info=True, channel=channel)

    async def close(self) -> None:
        self._closed = True
        if self._listen_check is not None:
            self._listen_check.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_check
        if self._listen_conn is not None:
            self._listen_conn.terminate()
