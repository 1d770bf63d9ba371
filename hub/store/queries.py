"""The store of queries, their per-bank tasks and their sealed reports.

Tables (component "queries"):
  queries     one row per accepted query: owner, state, times, the bank
              scope, and the subject (name + ID number) sealed, kept only
              while some bank is still pending.
  bank_tasks  one row per (query, bank): state, reason, attempts, and the
              bank's validated masked answer sealed until the report is built.
  reports     one row per READY query: the report sealed under its own data
              key; deleted (crypto-shredded) when it expires (R11).

Times are stored as integer microseconds since the Unix epoch (UTC), so
ordering is exact and portable. Nothing here is plaintext personal data:
only user ids, bank codes, counts and ciphertext.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import aiosqlite

from hub.crypto import Sealed
from hub.domain import BankProgress, BankState, NewQuery, QueryRecord, QueryState
from hub.store.db import Database, from_micros, from_micros_or_none, to_micros

MIGRATIONS = [
    """
    CREATE TABLE queries (
        query_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        state TEXT NOT NULL,
        bank_codes TEXT NOT NULL,
        consent_text_version TEXT NOT NULL,
        create_time INTEGER NOT NULL,
        report_due_time INTEGER NOT NULL,
        ready_time INTEGER,
        report_expire_time INTEGER,
        subject_key BLOB,
        subject_ciphertext BLOB,
        notified INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX queries_by_user ON queries (user_id, create_time, query_id);
    CREATE INDEX queries_by_state ON queries (state);
    CREATE TABLE bank_tasks (
        query_id TEXT NOT NULL REFERENCES queries (query_id),
        bank_code TEXT NOT NULL,
        position INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        attempt_count INTEGER NOT NULL DEFAULT 0,
        card_count INTEGER NOT NULL DEFAULT 0,
        finish_time INTEGER,
        answer_key BLOB,
        answer_ciphertext BLOB,
        PRIMARY KEY (query_id, bank_code)
    );
    CREATE TABLE reports (
        query_id TEXT PRIMARY KEY REFERENCES queries (query_id),
        data_key BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        generate_time INTEGER NOT NULL,
        expire_time INTEGER NOT NULL
    )
    """,
]

_UNFINISHED = (QueryState.ACCEPTED.value, QueryState.RUNNING.value)


class QueryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("queries", MIGRATIONS)

    # -- writes --------------------------------------------------------------

    async def insert(self, new: NewQuery, subject: Sealed, create_time: dt.datetime, due: dt.datetime) -> bool:
        """Writes the query and one PENDING task per bank in one transaction.
        Returns False (and writes nothing) if the query id exists."""

        async def run(conn: aiosqlite.Connection) -> bool:
            cur = await conn.execute(
                "INSERT OR IGNORE INTO queries (query_id, user_id, state, bank_codes, consent_text_version,"
                " create_time, report_due_time, subject_key, subject_ciphertext) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    new.query_id,
                    new.user_id,
                    QueryState.ACCEPTED.value,
                    ",".join(new.bank_codes),
                    new.consent_text_version,
                    to_micros(create_time),
                    to_micros(due),
                    subject.wrapped_key,
                    subject.ciphertext,
                ),
            )
            if cur.rowcount == 0:
                return False
            await conn.executemany(
                "INSERT INTO bank_tasks (query_id, bank_code, position, state) VALUES (?,?,?,?)",
                [(new.query_id, code, i, BankState.PENDING.value) for i, code in enumerate(new.bank_codes)],
            )
            return True

        return await self._db.write(run)

    async def record_attempts(self, query_id: str, bank_code: str, attempt_count: int) -> None:
        await self._db.execute(
            "UPDATE bank_tasks SET attempt_count = ? WHERE query_id = ? AND bank_code = ? AND state = ?",
            (attempt_count, query_id, bank_code, BankState.PENDING.value),
        )

    async def finish_bank(
        self,
        query_id: str,
        bank_code: str,
        state: BankState,
        reason: str,
        attempt_count: int,
        card_count: int,
        answer: Sealed | None,
        finish_time: dt.datetime,
    ) -> int | None:
        """Makes a bank's outcome final, atomically with its sealed answer.
        Returns how many banks of the query are still pending, or None if
        this bank was already final (nothing changed)."""

        async def run(conn: aiosqlite.Connection) -> int | None:
            cur = await conn.execute(
                "UPDATE bank_tasks SET state = ?, reason = ?, attempt_count = ?, card_count = ?, finish_time = ?,"
                " answer_key = ?, answer_ciphertext = ? WHERE query_id = ? AND bank_code = ? AND state = ?",
                (
                    state.value,
                    reason,
                    attempt_count,
                    card_count,
                    to_micros(finish_time),
                    answer.wrapped_key if answer else None,
                    answer.ciphertext if answer else None,
                    query_id,
                    bank_code,
                    BankState.PENDING.value,
                ),
            )
            if cur.rowcount == 0:
                return None
            async with conn.execute(
                "SELECT COUNT(*) FROM bank_tasks WHERE query_id = ? AND state = ?",
                (query_id, BankState.PENDING.value),
            ) as c:
                row = await c.fetchone()
            pending = int(row[0]) if row else 0
            if pending:
                await conn.execute(
                    "UPDATE queries SET state = ? WHERE query_id = ? AND state = ?",
                    (QueryState.RUNNING.value, query_id, QueryState.ACCEPTED.value),
                )
            return pending

        return await self._db.write(run)

    async def complete(self, query_id: str, report: Sealed, ready_time: dt.datetime, expire_time: dt.datetime) -> bool:
        """Stores the sealed report, marks the query READY and deletes what
        is no longer needed: the subject and the per-bank answers."""

        async def run(conn: aiosqlite.Connection) -> bool:
            cur = await conn.execute(
                "UPDATE queries SET state = ?, ready_time = ?, report_expire_time = ?, subject_key = NULL,"
                " subject_ciphertext = NULL WHERE query_id = ? AND state IN (?, ?)",
                (QueryState.READY.value, to_micros(ready_time), to_micros(expire_time), query_id, *_UNFINISHED),
            )
            if cur.rowcount == 0:
                return False
            await conn.execute(
                "INSERT INTO reports (query_id, data_key, ciphertext, generate_time, expire_time) VALUES (?,?,?,?,?)",
                (query_id, report.wrapped_key, report.ciphertext, to_micros(ready_time), to_micros(expire_time)),
            )
            await conn.execute(
                "UPDATE bank_tasks SET answer_key = NULL, answer_ciphertext = NULL WHERE query_id = ?", (query_id,)
            )
            return True

        return await self._db.write(run)

    async def expire_due(self, now: dt.datetime) -> list[str]:
        """R11: deletes the sealed report (data key and ciphertext) of every
        READY query whose report has expired, and marks it EXPIRED."""

        async def run(conn: aiosqlite.Connection) -> list[str]:
            async with conn.execute(
                "SELECT query_id FROM queries WHERE state = ? AND report_expire_time <= ?",
                (QueryState.READY.value, to_micros(now)),
            ) as cur:
                ids = [str(r[0]) for r in await cur.fetchall()]
            for query_id in ids:
                await conn.execute("DELETE FROM reports WHERE query_id = ?", (query_id,))
                await conn.execute(
                    "UPDATE queries SET state = ? WHERE query_id = ?", (QueryState.EXPIRED.value, query_id)
                )
            return ids

        return await self._db.write(run)

    async def mark_notified(self, query_id: str) -> None:
        await self._db.execute("UPDATE queries SET notified = 1 WHERE query_id = ?", (query_id,))

    # -- reads ---------------------------------------------------------------

    async def get(self, query_id: str) -> QueryRecord | None:
        records = await self._records("SELECT * FROM queries WHERE query_id = ?", (query_id,))
        return records[0] if records else None

    async def list_for_user(
        self, user_id: str, limit: int, before: tuple[dt.datetime, str] | None = None
    ) -> list[QueryRecord]:
        if before is None:
            return await self._records(
                "SELECT * FROM queries WHERE user_id = ? ORDER BY create_time DESC, query_id DESC LIMIT ?",
                (user_id, limit),
            )
        t = to_micros(before[0])
        return await self._records(
            "SELECT * FROM queries WHERE user_id = ? AND (create_time < ? OR (create_time = ? AND query_id < ?))"
            " ORDER BY create_time DESC, query_id DESC LIMIT ?",
            (user_id, t, t, before[1], limit),
        )

    async def latest_ready_time(self, user_id: str) -> dt.datetime | None:
        row = await self._db.fetchone(
            "SELECT MAX(ready_time) FROM queries WHERE user_id = ? AND ready_time IS NOT NULL", (user_id,)
        )
        return from_micros(row[0]) if row and row[0] is not None else None

    async def unfinished_for_user(self, user_id: str) -> QueryRecord | None:
        records = await self._records(
            "SELECT * FROM queries WHERE user_id = ? AND state IN (?, ?) ORDER BY create_time DESC LIMIT 1",
            (user_id, *_UNFINISHED),
        )
        return records[0] if records else None

    async def unfinished_ids(self) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT query_id FROM queries WHERE state IN (?, ?) ORDER BY create_time", _UNFINISHED
        )
        return [str(r[0]) for r in rows]

    async def ready_unnotified_ids(self) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT query_id FROM queries WHERE state = ? AND notified = 0 ORDER BY ready_time",
            (QueryState.READY.value,),
        )
        return [str(r[0]) for r in rows]

    async def subject(self, query_id: str) -> Sealed | None:
        row = await self._db.fetchone(
            "SELECT subject_key, subject_ciphertext FROM queries WHERE query_id = ?", (query_id,)
        )
        if row is None or row[0] is None:
            return None
        return Sealed(bytes(row[0]), bytes(row[1]))

    async def answers(self, query_id: str) -> list[tuple[BankProgress, Sealed | None]]:
        rows = await self._db.fetchall("SELECT * FROM bank_tasks WHERE query_id = ? ORDER BY position", (query_id,))
        out: list[tuple[BankProgress, Sealed | None]] = []
        for r in rows:
            sealed = Sealed(bytes(r["answer_key"]), bytes(r["answer_ciphertext"])) if r["answer_key"] else None
            out.append((_progress(r), sealed))
        return out

    async def report(self, query_id: str) -> Sealed | None:
        row = await self._db.fetchone("SELECT data_key, ciphertext FROM reports WHERE query_id = ?", (query_id,))
        return Sealed(bytes(row[0]), bytes(row[1])) if row else None

    async def _records(self, sql: str, params: Sequence[object]) -> list[QueryRecord]:
        rows = list(await self._db.fetchall(sql, params))
        if not rows:
            return []
        ids = [str(r["query_id"]) for r in rows]
        marks = ",".join("?" * len(ids))
        tasks: dict[str, list[BankProgress]] = {i: [] for i in ids}
        for t in await self._db.fetchall(
            f"SELECT * FROM bank_tasks WHERE query_id IN ({marks}) ORDER BY query_id, position", ids
        ):
            tasks[str(t["query_id"])].append(_progress(t))
        return [_record(r, tasks[str(r["query_id"])]) for r in rows]


def _progress(r: aiosqlite.Row) -> BankProgress:
    return BankProgress(
        bank_code=str(r["bank_code"]),
        state=BankState(r["state"]),
        reason=str(r["reason"]),
        attempt_count=int(r["attempt_count"]),
        card_count=int(r["card_count"]),
        finish_time=from_micros_or_none(r["finish_time"]),
    )


def _record(r: aiosqlite.Row, banks: Iterable[BankProgress]) -> QueryRecord:
    return QueryRecord(
        query_id=str(r["query_id"]),
        user_id=str(r["user_id"]),
        state=QueryState(r["state"]),
        bank_codes=tuple(str(r["bank_codes"]).split(",")),
        banks=tuple(banks),
        create_time=from_micros(r["create_time"]),
        report_due_time=from_micros(r["report_due_time"]),
        consent_text_version=str(r["consent_text_version"]),
        ready_time=from_micros_or_none(r["ready_time"]),
        report_expire_time=from_micros_or_none(r["report_expire_time"]),
    )
