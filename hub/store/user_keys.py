"""The users' report keys: public half, salt and epoch only (issue 12).

Tables (component "user_keys", its own migration list):
  user_keys   one row per user whose payment password has set a key pair:
              the X25519 public key, the argon2id salt and the epoch (the
              private key is derived from the password on demand and never
              stored; see hub.user_sealing).

This module also re-wraps the user-sealed rows of the `reports` table (owned
by hub.store.queries) and of `card_records` (hub.store.card_records) when the
password changes, in the same transaction as
the new password hash and key, so that a crash leaves either the old password
with the old key or the new with the new, never a mix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from hub.crypto import Sealed
from hub.store.db import Conn, Database, Row, from_micros, to_micros
from hub.user_sealing import UserKeyRecord

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
        "INSERT INTO user_keys (user_id, epoch, public_key, salt, update_time) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, public_key = excluded.public_key,"
        " salt = excluded.salt, update_time = excluded.update_time",
        (key.user_id, key.epoch, key.public_key, key.salt, to_micros(now)),
    )


class UserKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def get(self, user_id: str) -> UserKeyRecord | None:
        r = await self._db.fetchone(
            "SELECT user_id, epoch, public_key, salt FROM user_keys WHERE user_id = ?", (user_id,)
        )
        return _record(r) if r else None

    async def key_time(self, user_id: str) -> dt.datetime | None:
        """When the current key was set (a reset's time, for the user)."""
        r = await self._db.fetchone("SELECT update_time FROM user_keys WHERE user_id = ?", (user_id,))
        return from_micros(r["update_time"]) if r else None

    async def put(self, key: UserKeyRecord, now: dt.datetime, replaces_epoch: int | None) -> bool:
        """Stores `key` if the stored epoch is still `replaces_epoch` (None:
        no key yet). False if another request changed the key first."""

        async def run(conn: Conn) -> bool:
            row = await conn.fetch_one("SELECT epoch FROM user_keys WHERE user_id = ?", (key.user_id,))
            current = int(row["epoch"]) if row else None
            if current != replaces_epoch:
                return False
            await _put(conn, key, now)
            return True

        return await self._db.write(run)

    async def report(self, query_id: str) -> Sealed | None:
        r = await self._db.fetchone("SELECT data_key, ciphertext FROM reports WHERE query_id = ?", (query_id,))
        return Sealed(bytes(r["data_key"]), bytes(r["ciphertext"])) if r else None

    async def live_reports(self, user_id: str, now: dt.datetime) -> list[tuple[str, Sealed]]:
        """The user's reports not past their expiry (R11), sealed as stored."""
        rows = await self._db.fetchall(
            "SELECT r.query_id, r.data_key, r.ciphertext FROM reports r JOIN queries q ON q.query_id = r.query_id"
            " WHERE q.user_id = ? AND r.expire_time > ? ORDER BY r.query_id",
            (user_id, to_micros(now)),
        )
        return [(str(r["query_id"]), Sealed(bytes(r["data_key"]), bytes(r["ciphertext"]))) for r in rows]

    async def card_records(self, user_id: str) -> list[tuple[str, Sealed]]:
        """The user's new-card records (table of hub.store.card_records)."""
        rows = await self._db.fetchall(
            "SELECT query_id, wrapped_key, ciphertext FROM card_records WHERE user_id = ? ORDER BY query_id",
            (user_id,),
        )
        return [(str(r["query_id"]), Sealed(bytes(r["wrapped_key"]), bytes(r["ciphertext"]))) for r in rows]

    async def live_answers(self, user_id: str) -> list[tuple[str, str, Sealed]]:
        """(query id, bank code, sealed answer) of the user's queries not yet
        READY (table of hub.store.queries): issue 17 seals them on arrival."""
        rows = await self._db.fetchall(
            "SELECT b.query_id, b.bank_code, b.answer_key, b.answer_ciphertext FROM bank_tasks b"
            " JOIN queries q ON q.query_id = b.query_id WHERE q.user_id = ? AND b.answer_key IS NOT NULL"
            " ORDER BY b.query_id, b.bank_code",
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
            row = await conn.fetch_one("SELECT epoch FROM user_keys WHERE user_id = ?", (user_id,))
            if (int(row["epoch"]) if row else None) != replaces_epoch:
                return False
            await conn.execute(
                "UPDATE users SET password_hash = ?, password_failures = 0, password_locked_until = NULL,"
                " update_time = ? WHERE user_id = ?",
                (password_hash, to_micros(now), user_id),
            )
            await _put(conn, key, now)
            for query_id, old, new in rewrapped:
                await conn.execute(
                    "UPDATE reports SET data_key = ?, ciphertext = ? WHERE query_id = ? AND data_key = ?",
                    (new.wrapped_key, new.ciphertext, query_id, old.wrapped_key),
                )
            for query_id, bank_code, old, new in rewrapped_answers:
                await conn.execute(
                    "UPDATE bank_tasks SET answer_key = ?, answer_ciphertext = ? WHERE query_id = ? AND bank_code = ?"
                    " AND answer_key = ? AND answer_ciphertext = ?",
                    (new.wrapped_key, new.ciphertext, query_id, bank_code, old.wrapped_key, old.ciphertext),
                )
            for query_id, old, new in rewrapped_records:
                await conn.execute(
                    "UPDATE card_records SET wrapped_key = ?, ciphertext = ? WHERE user_id = ? AND query_id = ?"
                    " AND wrapped_key = ?",
                    (new.wrapped_key, new.ciphertext, user_id, query_id, old.wrapped_key),
                )
            return True

        return await self._db.write(run)
