"""Bank lanes (issue 16): which replica calls which bank.

Tables (component "lanes"):
  lanes     one row per bank: the replica that owns its lane (`owner`),
            until when (`expires`, wall-clock microseconds), and `epoch`,
            which grows at every claim and fences every write the owner
            makes for that bank's tasks (hub.store.batches).
  replicas  one heartbeat row per running replica, renewed with its lanes:
            the live replicas (unexpired rows) are what the lanes are
            spread over.

A replica's lane round (`round`) is one transaction: its heartbeat, the
renewal of all its lanes in one statement, the count of live replicas and,
while it holds fewer than its fair share (ceil(banks / live replicas)), a
claim of free or expired lanes with `FOR UPDATE SKIP LOCKED`. A replica
never takes a lane another live replica holds: it waits until the holder
gives it up (`release`, at a clean point) or its lease runs out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from hub.store.db import Conn, Database
from hub.store.statements import lanes as sql

COMPONENT = "lanes"
MIGRATIONS = [
    """
    CREATE TABLE lanes (
        bank_code TEXT PRIMARY KEY,
        owner TEXT,
        epoch INTEGER NOT NULL DEFAULT 0,
        expires INTEGER
    );
    CREATE INDEX lanes_by_owner ON lanes (owner);
    CREATE TABLE replicas (
        replica_id TEXT PRIMARY KEY,
        expires INTEGER NOT NULL
    )
    """
]


def wall_us() -> int:
    """The wall clock in microseconds (leases are compared across hosts)."""
    return int(time.time() * 1_000_000)


@dataclass(frozen=True)
class LaneRound:
    held: dict[str, int]
    """Every lane this replica holds after the round: bank code -> epoch."""
    claimed: frozenset[str]
    """The lanes of `held` claimed in this round (new epochs)."""
    live: int
    """Live replicas, this one included."""
    share: int
    """ceil(banks / live): the most lanes this replica should hold."""


class LaneStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def ensure(self, bank_codes: list[str]) -> None:
        """A lane row per configured bank (a bank added by a reload gets one)."""

        async def run(conn: Conn) -> None:
            await conn.executemany(
                sql.ENSURE_LANE,
                [(code,) for code in bank_codes],
            )

        await self._db.write(run)

    async def round(self, owner: str, now_us: int, expires_us: int, *, take_all: bool = False) -> LaneRound:
        """Heartbeat, renewal of every lane `owner` holds, and a claim up to
        its fair share, in one transaction. `take_all` claims every lane
        whatever its lease (the only process of a SQLite store, at start)."""

        async def run(conn: Conn) -> LaneRound:
            await conn.execute(
                sql.HEARTBEAT,
                (owner, expires_us),
            )
            row = await conn.fetch_one(
                sql.LIVE_REPLICAS_AND_BANKS,
                (now_us,),
            )
            assert row is not None  # an aggregate always has its row
            live, banks = max(1, int(row[0])), int(row[1])
            held = {str(r[0]): int(r[1]) for r in await conn.fetch_all(sql.RENEW, (expires_us, owner))}
            share = banks if take_all else math.ceil(banks / live)
            claimed: dict[str, int] = {}
            if len(held) < share:
                free = "" if take_all else sql.CLAIM_FREE
                params: tuple[Any, ...] = (owner, expires_us) + (() if take_all else (now_us,))
                claimed = {
                    str(r[0]): int(r[1])
                    for r in await conn.fetch_all(
                        sql.CLAIM.format(free=free, skip_locked=conn.skip_locked),
                        (*params[:2], owner, *params[2:], share - len(held)),
                    )
                }
            held.update(claimed)
            return LaneRound(held, frozenset(claimed), live, share)

        return await self._db.write(run)

    async def release(self, owner: str, bank_code: str, epoch: int) -> None:
        """Gives up one lane (handed over at a clean point: no call of ours
        to that bank is in flight any more)."""
        await self._db.execute(
            sql.RELEASE,
            (bank_code, owner, epoch),
        )

    async def leave(self, owner: str) -> None:
        """A stopping replica: every lane it holds and its heartbeat go, so
        the others take its banks at their next round."""

        async def run(conn: Conn) -> None:
            await conn.execute(sql.RELEASE_ALL, (owner,))
            await conn.execute(sql.FORGET_REPLICA, (owner,))

        await self._db.write(run)

    async def owners(self) -> dict[str, str | None]:
        """Bank code -> the replica owning its lane (or None): for operators and tests."""
        rows = await self._db.fetch_all(sql.OWNERS)
        return {str(r[0]): (str(r[1]) if r[1] is not None else None) for r in rows}
