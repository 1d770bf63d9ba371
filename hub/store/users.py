"""The users table: real-name users as the hub keeps them.

Name, ID number and phone are sealed together (Envelope, bound to the user
id); the ID number is also kept as a keyed hash to find the same person
under another app account. Only masked or non-identifying fields (region,
document expiry, masked phone) are stored in clear. Payment passwords are
argon2id hashes; the lockout counter lives beside them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from hub.keys.crypto import Sealed
from hub.store.db import Conn, Database, Row, from_micros, to_micros
from hub.store.statements import users as sql

AccessResult = Literal["VIEWED", "WRONG_PASSWORD", "LOCKED"]

COMPONENT = "users"
MIGRATIONS = [
    """
    CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        id_hash TEXT NOT NULL,
        identity_wrapped_key BLOB NOT NULL,
        identity_ciphertext BLOB NOT NULL,
        masked_phone TEXT NOT NULL,
        region_code TEXT NOT NULL,
        id_expiry TEXT,
        password_hash TEXT NOT NULL,
        password_failures INTEGER NOT NULL DEFAULT 0,
        password_locked_until INTEGER,
        create_time INTEGER NOT NULL,
        update_time INTEGER NOT NULL
    );
    CREATE INDEX users_by_id_hash ON users (id_hash)
    """
]


@dataclass(frozen=True)
class UserRow:
    user_id: str
    id_hash: str
    identity_wrapped_key: bytes
    identity_ciphertext: bytes
    masked_phone: str
    region_code: str
    id_expiry: dt.date | None
    password_hash: str
    password_failures: int
    password_locked_until: dt.datetime | None
    create_time: dt.datetime
    update_time: dt.datetime
    data_key: Sealed | None = None
    """Issue 22: the user's data key (table user_data_keys of
    hub.store.erasure), sealed under the KEK, when the identity record is
    encrypted under it; attached by hub.identity.users, never stored here."""


def _row(r: Row) -> UserRow:
    return UserRow(
        user_id=r["user_id"],
        id_hash=r["id_hash"],
        identity_wrapped_key=bytes(r["identity_wrapped_key"]),
        identity_ciphertext=bytes(r["identity_ciphertext"]),
        masked_phone=r["masked_phone"],
        region_code=r["region_code"],
        id_expiry=dt.date.fromisoformat(r["id_expiry"]) if r["id_expiry"] else None,
        password_hash=r["password_hash"],
        password_failures=r["password_failures"],
        password_locked_until=from_micros(r["password_locked_until"]) if r["password_locked_until"] else None,
        create_time=from_micros(r["create_time"]),
        update_time=from_micros(r["update_time"]),
    )


@dataclass(frozen=True)
class PasswordOutcome:
    """What one checked password attempt did to the lockout state."""

    result: AccessResult
    """VIEWED (right password), WRONG_PASSWORD, or LOCKED (refused unchecked
    because a lock was in force)."""
    locked_until: dt.datetime | None
    """Set when the password is (now) locked."""
    attempts_left: int


class UserStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def get(self, user_id: str) -> UserRow | None:
        r = await self._db.fetch_one(sql.GET, (user_id,))
        return _row(r) if r else None

    async def user_ids_with_id_hash(self, id_hash: str) -> list[str]:
        rows = await self._db.fetch_all(sql.BY_ID_HASH, (id_hash,))
        return [r["user_id"] for r in rows]

    async def upsert(self, row: UserRow, keep_password: bool) -> UserRow:
        """Inserts or replaces a user. With `keep_password`, an existing
        password hash and its lockout state are kept."""

        async def run(conn: Conn) -> UserRow:
            old_raw = await conn.fetch_one(
                sql.GET + conn.for_update,
                (row.user_id,),
            )
            old = _row(old_raw) if old_raw else None
            if old is None and keep_password:
                raise ValueError("a new user needs a payment password")
            merged = UserRow(
                user_id=row.user_id,
                id_hash=row.id_hash,
                identity_wrapped_key=row.identity_wrapped_key,
                identity_ciphertext=row.identity_ciphertext,
                masked_phone=row.masked_phone,
                region_code=row.region_code,
                id_expiry=row.id_expiry,
                password_hash=old.password_hash if old and keep_password else row.password_hash,
                password_failures=old.password_failures if old and keep_password else 0,
                password_locked_until=old.password_locked_until if old and keep_password else None,
                create_time=old.create_time if old else row.create_time,
                update_time=row.update_time,
            )
            await conn.execute(
                sql.PUT,
                (
                    merged.user_id,
                    merged.id_hash,
                    merged.identity_wrapped_key,
                    merged.identity_ciphertext,
                    merged.masked_phone,
                    merged.region_code,
                    merged.id_expiry.isoformat() if merged.id_expiry else None,
                    merged.password_hash,
                    merged.password_failures,
                    to_micros(merged.password_locked_until) if merged.password_locked_until else None,
                    to_micros(merged.create_time),
                    to_micros(merged.update_time),
                ),
            )
            return merged

        return await self._db.write(run)

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Stores a re-hash of the same password (stronger parameters); only
        if the hash is still `old_hash` (a password set meanwhile wins)."""

        async def run(conn: Conn) -> bool:
            changed = await conn.execute(
                sql.REHASH,
                (new_hash, user_id, old_hash),
            )
            return bool(changed)

        return await self._db.write(run)

    async def record_password_attempt(
        self, user_id: str, correct: bool, now: dt.datetime, max_failures: int, lockout: dt.timedelta
    ) -> PasswordOutcome:
        """Applies one checked attempt atomically: a lock in force refuses it
        whatever the password; a failure counts towards the lock; success
        clears the count."""

        async def run(conn: Conn) -> PasswordOutcome:
            r = await conn.fetch_one(
                sql.PASSWORD_STATE + conn.for_update,
                (user_id,),
            )
            if r is None:
                raise KeyError(user_id)
            failures = r["password_failures"]
            locked_until = from_micros(r["password_locked_until"]) if r["password_locked_until"] else None
            if locked_until is not None and locked_until > now:
                return PasswordOutcome("LOCKED", locked_until, 0)
            if locked_until is not None:  # the lock has run out: a fresh start
                failures, locked_until = 0, None
            if correct:
                failures = 0
            else:
                failures += 1
                if failures >= max_failures:
                    failures, locked_until = 0, now + lockout
            await conn.execute(
                sql.SET_PASSWORD_STATE,
                (failures, to_micros(locked_until) if locked_until else None, user_id),
            )
            left = 0 if locked_until else max_failures - failures
            return PasswordOutcome("VIEWED" if correct else "WRONG_PASSWORD", locked_until, left)

        return await self._db.write(run)
