"""Whether this replica's store accepts writes, as its health says (issue 21).

The engine reports each store write it makes: `failed(error)` when one
fails, `succeeded()` when one succeeds. Until issue 21 only a successful
write turned the replica SERVING again, so a replica with no bank work
during a database failover stayed NOT_SERVING for good: health-checked
clients and load balancers sent it nothing, so it never wrote again.

Now, from the first failure on, a probe runs on a schedule of its own:
every `interval` seconds one cheap write (`Database.probe()`: a transaction
id on PostgreSQL, a one-row write on SQLite), bounded by `timeout`. The
first probe that succeeds turns the replica SERVING, whether it is busy or
idle; then probing stops until the next failure. Listeners (the server's
health status) are told each change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from hub.core.logging import get_logger
from hub.store.db import Database

log = get_logger("hub.store")

HealthListener = Callable[[bool], None]


class StoreHealth:
    def __init__(self, db: Database, interval: float, timeout: float) -> None:
        self._db = db
        self._interval = interval
        self._timeout = timeout
        self._healthy = True
        self._listeners: list[HealthListener] = []
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        self.probes = 0
        """Probes run so far (tests, diagnostics)."""

    @property
    def healthy(self) -> bool:
        return self._healthy

    def add_listener(self, listener: HealthListener) -> None:
        """Told False when store writes start failing, True when a write or
        a probe succeeds again."""
        self._listeners.append(listener)

    def failed(self, error: str) -> None:
        """A store write failed: unhealthy, and probing until one succeeds."""
        self._set(False, error)
        if not self._closed and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop(), name="store-probe")

    def succeeded(self) -> None:
        self._set(True)

    async def close(self) -> None:
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe

    def _set(self, healthy: bool, error: str = "") -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            log.info("store_writes_recovered")
        else:
            log.error("store_writes_failing", error=error)
        for listener in list(self._listeners):
            listener(healthy)

    async def _probe_loop(self) -> None:
        while not self._healthy and not self._closed:
            await asyncio.sleep(self._interval)
            if self._healthy or self._closed:
                return
            self.probes += 1
            try:
                await asyncio.wait_for(self._db.probe(), self._timeout)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.debug("store_probe_failed", error=type(error).__name__)
                continue
            log.info("store_probe_answered")
            self._set(True)
