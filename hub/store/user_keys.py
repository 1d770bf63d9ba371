"""The users' report keys: public half, salt and epoch only (issue 12).

Tables (component "user_keys", its own migration list):
  user_keys   one row per user whose payment password has set a key pair:
              the X25519 public key, the argon2id salt and the epoch (the
              private key is derived from the password on demand and never
              stored; see hub.keys.user_sealing).

This module also re-wraps the user-sealed rows of the `reports` table (owned
by hub.store.queries) and of `card_records` (hub.store.card_records) when the
password changes, in the same transaction as
the new password hash and key, so that a crash leaves either the old password
with the old key or the new with the new, never a mix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from hub.keys.crypto import Sealed
from hub.keys.user_sealing import UserKeyRecord
from hub.store.db import Conn, Database, Row, from_micros, to_micros
from hub.store.statements import user_keys as sql

COMPONENT = "user_keys"
MIGRATIONS = [
    """
    CREATE TABLE user_keys (
        user_id TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        salt BLOB NOT NULL,
        update_time INTEGER NOT NULL
    )
    """,
]


def _record(r: Row) -> UserKeyRecord:
    return UserKeyRecord(
        user_id=str(r["user_id"]), epoch=int(r["epoch"]), public_key=bytes(r["public_key"]), salt=bytes(r["salt"])
    )


async def _put(conn: Conn, key: UserKeyRecord, now: dt.datetime) -> None:
    await conn.execute(
        sql.PUT,
        (key.user_id, key.epoch, key.public_key, key.salt, to_micros(now)),
    )


class UserKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def get(self, user_id: str) -> UserKeyRecord | None:
        r = await self._db.fetch_one(sql.GET, (user_id,))
        return _record(r) if r else None

    async def key_time(self, user_id: str) -> dt.datetime | None:
        """When the current key was set (a reset's time, for the user)."""
        r = await self._db.fetch_one(sql.UPDATE_TIME, (user_id,))
        return from_micros(r["update_time"]) if r else None

    async def put(self, key: UserKeyRecord, now: dt.datetime, replaces_epoch: int | None) -> bool:
        """Stores `key` if the stored epoch is still `replaces_epoch` (None:
        no key yet). False if another request changed the key first."""

        async def run(conn: Conn) -> bool:
            row = await conn.fetch_one(sql.EPOCH, (key.user_id,))
            current = int(row["epoch"]) if row else None
            if current != replaces_epoch:
                return False
            await _put(conn, key, now)
            return True

        return await self._db.write(run)

    async def report(self, query_id: str) -> Sealed | None:
        r = await self._db.fetch_one(sql.REPORT, (query_id,))
        return Sealed(bytes(r["data_key"]), bytes(r["ciphertext"])) if r else None

    async def live_reports(self, user_id: str, now: dt.datetime) -> list[tuple[str, Sealed]]:
        """The user's reports not past their expiry (R11), sealed as stored."""
        rows = await self._db.fetch_all(
            sql.LIVE_REPORTS,
            (user_id, to_micros(now)),
        )
        return [(str(r["query_id"]), Sealed(bytes(r["data_key"]), bytes(r["ciphertext"]))) for r in rows]

    async def card_records(self, user_id: str) -> list[tuple[str, Sealed]]:
        """The user's new-card records (table of hub.store.card_records)."""
        rows = await self._db.fetch_all(
            sql.CARD_RECORDS,
            (user_id,),
        )
        return [(str(r["query_id"]), Sealed(bytes(r["wrapped_key"]), bytes(r["ciphertext"]))) for r in rows]

    async def live_answers(self, user_id: str) -> list[tuple[str, str, Sealed]]:
        """(query id, bank code, sealed answer) of the user's queries not yet
        READY (table of hub.store.queries): issue 17 seals them on arrival."""
        rows = await self._db.fetch_all(
            sql.SEALED_ANSWERS,
            (user_id,),
        )
        return [
            (str(r["query_id"]), str(r["bank_code"]), Sealed(bytes(r["answer_key"]), bytes(r["answer_ciphertext"])))
            for r in rows
        ]

    async def change_password(
        self,
        user_id: str,
        password_hash: str,
        key: UserKeyRecord,
        replaces_epoch: int | None,
        rewrapped: Sequence[tuple[str, Sealed, Sealed]],
        now: dt.datetime,
        rewrapped_records: Sequence[tuple[str, Sealed, Sealed]] = (),
        rewrapped_answers: Sequence[tuple[str, str, Sealed, Sealed]] = (),
    ) -> bool:
        """In one transaction: the new password hash (lockout cleared), the
        new key, and each (query id, old sealed, new sealed) report swapped
        only if it is still the old one (an expiry in between wins). False,
        with nothing written, if the key changed since it was read."""

        async def run(conn: Conn) -> bool:
            row = await conn.fetch_one(sql.EPOCH, (user_id,))
            if (int(row["epoch"]) if row else None) != replaces_epoch:
                return False
            await conn.execute(
                sql.SET_PASSWORD,
                (password_hash, to_micros(now), user_id),
            )
            await _put(conn, key, now)
            for query_id, old, new in rewrapped:
                await conn.execute(
                    sql.RESEAL_REPORT,
                    (new.wrapped_key, new.ciphertext, query_id, old.wrapped_key),
                )
            for query_id, bank_code, old, new in rewrapped_answers:
                await conn.execute(
                    sql.RESEAL_ANSWER,
                    (new.wrapped_key, new.ciphertext, query_id, bank_code, old.wrapped_key, old.ciphertext),
                )
            for query_id, old, new in rewrapped_records:
                await conn.execute(
                    sql.RESEAL_CARD_RECORD,
                    (new.wrapped_key, new.ciphertext, user_id, query_id, old.wrapped_key),
                )
            return True

        return await self._db.write(run)
