"""What replicas share about each bank (issue 8): its circuit breaker's
verdict and its call slots.

Tables (component "bank_health"):
  bank_breakers  one row per bank whose breaker a replica opened: until when
                 (wall-clock microseconds). Announced on BREAKERS, which every
                 replica's breakers follow (the table records the verdict;
                 the channel is how running replicas learn it).
  bank_slots     `max_concurrent` rows per bank; a call holds one row (its
                 `holder`) for its duration, so the cap counts calls from all
                 replicas together. A holder that dies frees its slot when
                 `expires` passes (the call's deadline plus a margin).

Used only when the database is shared (PostgreSQL): one SQLite process
holds the cap and the breaker exactly in memory. The slot statements are
therefore PostgreSQL's own (`FOR UPDATE SKIP LOCKED`, `pg_notify` in a
data-modifying CTE): each is one autocommit round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from hub.store.db import Database

COMPONENT = "bank_health"
MIGRATIONS = [
    """
    CREATE TABLE bank_breakers (
        bank_code TEXT PRIMARY KEY,
        open_until INTEGER NOT NULL
    );
    CREATE TABLE bank_slots (
        bank_code TEXT NOT NULL,
        slot INTEGER NOT NULL,
        holder TEXT,
        expires INTEGER,
        PRIMARY KEY (bank_code, slot)
    )
    """
]
BREAKERS = "cardlookup_breakers"
SLOTS = "cardlookup_slots"
_POLL = 0.05
"""Seconds between slot retries when no release was announced (a holder
died and its slot expires rather than being released)."""


def wall_us() -> int:
    return int(time.time() * 1_000_000)


class BankHealthStore:
    def __init__(self, db: Database, owner: str, hold_for: float) -> None:
        self._db = db
        self._owner = owner
        self._hold_us = int(hold_for * 1_000_000)
        self._seq = itertools.count()
        self._released: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._provisioned: dict[str, int] = {}
        """Slots known to exist per bank (a cache of rows nothing deletes:
        nobody needs to invalidate it; a larger cap after a reload adds rows)."""
        self._provisioning = asyncio.Lock()

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def start(self, on_breaker: Callable[[str, float], None]) -> None:
        """Listens to other replicas: breaker verdicts (bank, seconds it stays
        open; 0 = closed) go to `on_breaker`; slot releases wake waiters."""

        def breaker(payload: str) -> None:
            code, until = json.loads(payload)
            on_breaker(str(code), max(0.0, (int(until) - wall_us()) / 1e6) if until else 0.0)

        await self._db.listen(BREAKERS, breaker)
        await self._db.listen(SLOTS, lambda code: self._released[code].set())

    # -- breakers -------------------------------------------------------------

    async def publish_breaker(self, bank_code: str, open_for: float) -> None:
        until = wall_us() + int(open_for * 1_000_000) if open_for > 0 else 0

        async def run(conn: Any) -> None:
            if until:
                await conn.execute(
                    "INSERT INTO bank_breakers (bank_code, open_until) VALUES (?, ?)"
                    " ON CONFLICT (bank_code) DO UPDATE SET open_until = excluded.open_until",
                    (bank_code, until),
                )
            else:
                await conn.execute("DELETE FROM bank_breakers WHERE bank_code = ?", (bank_code,))
            await conn.notify(BREAKERS, json.dumps([bank_code, until]))

        await self._db.write(run)

    async def open_breakers(self) -> dict[str, float]:
        """Each bank a replica's breaker holds open now: seconds it stays
        open. Read by a replica that starts, or whose listening connection
        came back, so it follows verdicts announced before it listened."""
        now = wall_us()
        rows = await self._db.fetchall(
            "SELECT bank_code, open_until FROM bank_breakers WHERE open_until > ?",
            (now,),
        )
        return {str(r[0]): (int(r[1]) - now) / 1e6 for r in rows}

    # -- slots ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(self, bank_code: str, cap: int) -> AsyncIterator[None]:
        """Holds one of the bank's `cap` slots, shared by every replica."""
        if self._provisioned.get(bank_code, 0) < cap:
            async with self._provisioning:  # once per bank, not once per waiting task
                if self._provisioned.get(bank_code, 0) < cap:
                    await self._provision(bank_code, cap)
        holder = f"{self._owner}:{next(self._seq)}"
        while True:
            event = self._released[bank_code]
            event.clear()
            slot = await self._take(bank_code, cap, holder)
            if slot is not None:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), _POLL)
        try:
            yield
        finally:
            await asyncio.shield(self._give_back(bank_code, slot, holder))

    async def _provision(self, bank_code: str, cap: int) -> None:
        async def run(conn: Any) -> None:
            await conn.executemany(
                "INSERT INTO bank_slots (bank_code, slot) VALUES (?, ?) ON CONFLICT (bank_code, slot) DO NOTHING",
                [(bank_code, i) for i in range(cap)],
            )

        await self._db.write(run)
        self._provisioned[bank_code] = cap

    async def _take(self, bank_code: str, cap: int, holder: str) -> int | None:
        """One autocommit statement (one round trip; issue 10): it is atomic
        alone, and SKIP LOCKED lets replicas taking slots of the same bank
        pass each other."""
        now = wall_us()
        row = await self._db.write_one(
            "UPDATE bank_slots SET holder = ?, expires = ? WHERE (bank_code, slot) IN"
            " (SELECT bank_code, slot FROM bank_slots WHERE bank_code = ? AND slot < ?"
            " AND (holder IS NULL OR expires < ?) LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING slot",
            (holder, now + self._hold_us, bank_code, cap, now),
        )
        return int(row[0]) if row else None

    async def _give_back(self, bank_code: str, slot: int, holder: str) -> None:
        """Frees the slot and wakes the waiters of every replica, in one
        autocommit statement (the notification is delivered on its commit);
        a slot that expired and went to another holder is left alone, and
        nobody is woken for it."""
        with contextlib.suppress(Exception):  # not given back: it expires instead
            await self._db.execute(
                "WITH freed AS (UPDATE bank_slots SET holder = NULL, expires = NULL"
                " WHERE bank_code = ? AND slot = ? AND holder = ? RETURNING bank_code)"
                " SELECT pg_notify(?, bank_code) FROM freed",
                (bank_code, slot, holder, SLOTS),
            )
