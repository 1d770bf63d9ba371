"""The identity tables beside users: SMS verifications, CreateQuery request
ids (idempotency), report access events (R10) and sent ready notices (R9).

Rule decisions that must not race (is this code right and unused, may this
user get another SMS) run inside one write call whose check locks what it
reads (`FOR UPDATE`, or an advisory lock on the key when there is no row
yet), so a check and its update commit together on one SQLite process and
across PostgreSQL replicas alike: five wrong codes sent at once to three
replicas count five.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal

from hub.store.db import Conn, Database, from_micros, to_micros
from hub.store.statements import identity as sql
from hub.store.users import AccessResult

COMPONENT = "identity"
MIGRATIONS = [
    """
    CREATE TABLE verifications (
        verification_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        create_time INTEGER NOT NULL,
        expire_time INTEGER NOT NULL,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        used_time INTEGER
    );
    CREATE INDEX verifications_by_user ON verifications (user_id, create_time);
    CREATE TABLE query_requests (
        user_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        query_id TEXT NOT NULL,
        create_time INTEGER NOT NULL,
        PRIMARY KEY (user_id, request_id)
    );
    CREATE TABLE report_access_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        query_id TEXT NOT NULL,
        time INTEGER NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX report_access_by_query ON report_access_events (query_id, seq);
    CREATE TABLE ready_notices (
        query_id TEXT PRIMARY KEY,
        send_time INTEGER NOT NULL
    )
    """,
    # 2: SMS limits per person and per phone, not per app account (issue 9
    # item 5). Keyed hashes only: the phone number itself is never stored.
    """
    ALTER TABLE verifications ADD COLUMN person_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE verifications ADD COLUMN phone_hash TEXT NOT NULL DEFAULT '';
    CREATE INDEX verifications_by_person ON verifications (person_hash, create_time);
    CREATE INDEX verifications_by_phone ON verifications (phone_hash, create_time)
    """,
]


@dataclass(frozen=True)
class NewVerification:
    verification_id: str
    user_id: str
    code_hash: str
    create_time: dt.datetime
    expire_time: dt.datetime
    person_hash: str = ""
    """Keyed hash of the ID number: the resend interval spans the person's accounts."""
    phone_hash: str = ""
    """Keyed hash of the phone number: the resend interval and the daily cap span it."""


@dataclass(frozen=True)
class SmsLimits:
    resend_interval: dt.timedelta
    daily_cap: int
    """At most this many codes to one phone in any `day`."""
    day: dt.timedelta = dt.timedelta(hours=24)


@dataclass(frozen=True)
class RateLimited:
    retry_time: dt.datetime
    limit: Literal["resend", "daily"] = "resend"


CodeCheck = Literal["OK", "NOT_FOUND", "EXPIRED", "USED", "LOCKED", "WRONG"]


@dataclass(frozen=True)
class CodeOutcome:
    result: CodeCheck
    attempts_left: int = 0


@dataclass(frozen=True)
class VerificationRow:
    verification_id: str
    user_id: str
    expire_time: dt.datetime
    failed_attempts: int
    used: bool


@dataclass(frozen=True)
class RequestRow:
    fingerprint: str
    query_id: str


@dataclass(frozen=True)
class AccessEvent:
    time: dt.datetime
    result: AccessResult


class IdentityStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    # --- SMS verification (R4) ---

    async def add_verification(self, new: NewVerification, limits: SmsLimits) -> RateLimited | None:
        """Stores a verification unless the latest one of the same account,
        person or phone is younger than the resend interval, or the phone
        already got `daily_cap` codes in the last day; then nothing is
        stored and the exact retry time is returned."""

        async def run(conn: Conn) -> RateLimited | None:
            # The limits span account, person and phone: lock all three (in
            # one order, so two transactions never wait on each other).
            for key in sorted({new.user_id, new.person_hash or "", new.phone_hash or ""} - {""}):
                await conn.lock("sms:" + key)
            r = await conn.fetch_one(
                sql.LATEST_CODE,
                (new.user_id, new.person_hash or new.user_id, new.phone_hash or new.user_id),
            )
            if r is not None and r["latest"]:
                retry = from_micros(r["latest"]) + limits.resend_interval
                if retry > new.create_time:
                    return RateLimited(retry)
            if new.phone_hash:
                times = [
                    row["create_time"]
                    for row in await conn.fetch_all(
                        sql.CODES_TO_PHONE_SINCE,
                        (new.phone_hash, to_micros(new.create_time - limits.day)),
                    )
                ]
                if len(times) >= limits.daily_cap:
                    return RateLimited(from_micros(times[len(times) - limits.daily_cap]) + limits.day, "daily")
            await conn.execute(
                sql.INSERT_VERIFICATION,
                (
                    new.verification_id,
                    new.user_id,
                    new.code_hash,
                    to_micros(new.create_time),
                    to_micros(new.expire_time),
                    new.person_hash,
                    new.phone_hash,
                ),
            )
            return None

        return await self._db.write(run)

    async def get_verification(self, verification_id: str) -> VerificationRow | None:
        r = await self._db.fetch_one(
            sql.GET_VERIFICATION,
            (verification_id,),
        )
        if r is None:
            return None
        return VerificationRow(
            r["verification_id"],
            r["user_id"],
            from_micros(r["expire_time"]),
            r["failed_attempts"],
            bool(r["used_time"]),
        )

    async def consume_code(
        self,
        *,
        user_id: str,
        verification_id: str,
        code_hash: str,
        now: dt.datetime,
        max_attempts: int,
        request: tuple[str, str, str] | None = None,
    ) -> CodeOutcome:
        """Checks a code and, when right, marks the verification used and (if
        `request` = (request_id, fingerprint, query_id) is given) records the
        CreateQuery request in the same transaction, so a code opens exactly
        one query. A wrong code counts an attempt."""

        async def run(conn: Conn) -> CodeOutcome:
            r = await conn.fetch_one(
                sql.VERIFICATION_OF_USER + conn.for_update,
                (verification_id, user_id),
            )
            if r is None:
                return CodeOutcome("NOT_FOUND")
            if r["used_time"]:
                return CodeOutcome("USED")
            if r["failed_attempts"] >= max_attempts:
                return CodeOutcome("LOCKED")
            if from_micros(r["expire_time"]) <= now:
                return CodeOutcome("EXPIRED")
            if r["code_hash"] != code_hash:
                failed = r["failed_attempts"] + 1
                await conn.execute(
                    sql.COUNT_FAILED_ATTEMPT,
                    (failed, verification_id),
                )
                left = max_attempts - failed
                return CodeOutcome("WRONG" if left > 0 else "LOCKED", left)
            await conn.execute(sql.USE_CODE, (to_micros(now), verification_id))
            if request is not None:
                request_id, fingerprint, query_id = request
                await conn.execute(
                    sql.INSERT_REQUEST,
                    (user_id, request_id, fingerprint, query_id, to_micros(now)),
                )
            return CodeOutcome("OK")

        return await self._db.write(run)

    # --- CreateQuery idempotency ---

    def person_lock(self, person_key: str) -> AbstractAsyncContextManager[None]:
        """Held around CreateQuery's checks and acceptance for one person
        (R12: one unfinished query, cooldown), in the database, so it holds
        across replicas."""
        return self._db.exclusive("person:" + person_key)

    async def get_request(self, user_id: str, request_id: str) -> RequestRow | None:
        r = await self._db.fetch_one(
            sql.GET_REQUEST,
            (user_id, request_id),
        )
        return RequestRow(r["fingerprint"], r["query_id"]) if r else None

    # --- report access events (R10) ---

    async def add_access_event(self, query_id: str, time: dt.datetime, result: AccessResult) -> None:
        await self._db.execute(
            sql.INSERT_ACCESS_EVENT,
            (query_id, to_micros(time), result),
        )

    async def access_events(self, query_ids: list[str]) -> dict[str, list[AccessEvent]]:
        """Events per query, oldest first."""
        out: dict[str, list[AccessEvent]] = {q: [] for q in query_ids}
        if not query_ids:
            return out
        marks = ",".join("?" * len(query_ids))
        rows = await self._db.fetch_all(
            sql.ACCESS_EVENTS.format(marks=marks),
            query_ids,
        )
        for r in rows:
            out[r["query_id"]].append(AccessEvent(from_micros(r["time"]), r["result"]))
        return out

    # --- ready notices (R9) ---

    async def notice_sent(self, query_id: str) -> bool:
        return await self._db.fetch_one(sql.NOTICE_SENT, (query_id,)) is not None

    async def mark_notice_sent(self, query_id: str, time: dt.datetime) -> None:
        await self._db.execute(
            sql.INSERT_NOTICE,
            (query_id, to_micros(time)),
        )
