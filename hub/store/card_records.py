"""Records of a user's cards across lookups (issue 12: "new cards since the
last lookup", opt-in).

Tables (component "card_records", its own migration list):
  card_tracking  one row per user who chose: enabled 1 (opted in at their
                 latest CreateQuery) or 0 (opted out).
  card_records   per (user, opted-in READY query): the set of keyed
                 fingerprints of (bank code, card_ref) of that report's cards,
                 sealed to the user's payment-password key (hub.keys.user_sealing);
                 the newest two per user are kept (the latest lookup and the
                 one before it), beyond the report's 7 days (R11). Opting out
                 deletes them all.

The hub can neither read a record (sealed to the user) nor link one to a
card (the fingerprints are keyed, and sealed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hub.keys.crypto import Sealed
from hub.store.db import Conn, Database, Row, from_micros, to_micros
from hub.store.statements import card_records as sql

COMPONENT = "card_records"
MIGRATIONS = [
    """
    CREATE TABLE card_tracking (
        user_id TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        update_time INTEGER NOT NULL
    );
    CREATE TABLE card_records (
        user_id TEXT NOT NULL,
        query_id TEXT NOT NULL,
        ready_time INTEGER NOT NULL,
        wrapped_key BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        PRIMARY KEY (user_id, query_id)
    )
    """,
]
KEEP_RECORDS = 2
"""The latest lookup's record and the one it is compared with."""


@dataclass(frozen=True)
class CardRecord:
    user_id: str
    query_id: str
    ready_time: dt.datetime
    sealed: Sealed


def _record(r: Row) -> CardRecord:
    return CardRecord(
        str(r["user_id"]),
        str(r["query_id"]),
        from_micros(r["ready_time"]),
        Sealed(bytes(r["wrapped_key"]), bytes(r["ciphertext"])),
    )


class CardRecordStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def set_tracking(self, user_id: str, enabled: bool, now: dt.datetime) -> None:
        """Opting out deletes every record of the user in the same commit.
        Nothing is written for a user who is not enrolled (any more): a
        CreateQuery that raced an account closure (issue 22) must not leave
        a tracking row that lets a later READY re-create a record."""

        async def run(conn: Conn) -> None:
            await conn.execute(
                sql.SET_TRACKING,
                (user_id, int(enabled), to_micros(now), user_id),
            )
            if not enabled:
                await conn.execute(sql.DELETE_ALL, (user_id,))

        await self._db.write(run)

    async def tracking(self, user_id: str) -> bool:
        r = await self._db.fetch_one(sql.TRACKING, (user_id,))
        return bool(r and r["enabled"])

    async def put(self, record: CardRecord) -> None:
        """Stores (or replaces) a query's record and drops all but the newest
        KEEP_RECORDS of the user; nothing if the user opted out meanwhile."""

        async def run(conn: Conn) -> None:
            # FOR UPDATE on PostgreSQL: a closure deleting the tracking row
            # commits first and this then reads no row, or waits for this.
            row = await conn.fetch_one(
                sql.TRACKING + conn.for_update,
                (record.user_id,),
            )
            if not (row and row["enabled"]):
                return
            await conn.execute(
                sql.PUT,
                (
                    record.user_id,
                    record.query_id,
                    to_micros(record.ready_time),
                    record.sealed.wrapped_key,
                    record.sealed.ciphertext,
                ),
            )
            await conn.execute(
                sql.KEEP_NEWEST,
                (record.user_id, record.user_id, KEEP_RECORDS),
            )

        await self._db.write(run)

    async def get(self, user_id: str, query_id: str) -> CardRecord | None:
        r = await self._db.fetch_one(sql.GET, (user_id, query_id))
        return _record(r) if r else None

    async def previous(self, user_id: str, before: dt.datetime) -> CardRecord | None:
        """The newest record of a lookup that became READY before `before`."""
        r = await self._db.fetch_one(sql.PREVIOUS, (user_id, to_micros(before)))
        return _record(r) if r else None

    async def all_for(self, user_id: str) -> list[CardRecord]:
        rows = await self._db.fetch_all(sql.ALL_FOR, (user_id,))
        return [_record(r) for r in rows]
