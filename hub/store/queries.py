"""The store of queries, their per-bank tasks and their sealed reports.

Tables (component "queries"):
  queries     one row per accepted query: owner, state, times, the bank
              scope, and the subject (name + ID number) sealed, kept only
              while some bank is still pending.
  bank_tasks  one row per (query, bank): state, reason, attempts, and the
              bank's validated masked answer sealed until the report is built.
  reports     one row per READY query: the report sealed under its own data
              key; deleted (crypto-shredded) when it expires (R11).

Replicas (issues 8 and 16): a PENDING bank task is worked by the replica
that owns its bank's lane (hub.store.lanes); every outcome is written by
that replica's group commit (hub.store.batches), fenced by the lane's
epoch, and moves the query's `pending` count in the same transaction.
`lease_owner` and `lease_epoch` of a final task record which replica wrote
its outcome, under which lane epoch. New tasks are announced on WORK (the
query id) so that the lane owners pick them up. Each outcome and each
READY is announced on the PROGRESS channel (LISTEN/NOTIFY on PostgreSQL),
which is how WatchQuery on any replica follows a query worked on by
another. A READY query's SMS is claimed before it is sent (`notified`: 0
not yet, 2 claimed until `notify_expires`, 1 sent), so one replica sends it.

Times are stored as integer microseconds since the Unix epoch (UTC), so
ordering is exact and portable. Nothing here is plaintext personal data:
only user ids, bank codes, counts and ciphertext.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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
    """
    ALTER TABLE bank_tasks ADD COLUMN lease_owner TEXT;
    ALTER TABLE bank_tasks ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE bank_tasks ADD COLUMN lease_expires INTEGER;
    CREATE INDEX bank_tasks_pending ON bank_tasks (lease_expires) WHERE state = 'PENDING';
    CREATE INDEX bank_tasks_by_owner ON bank_tasks (lease_owner) WHERE state = 'PENDING';
    ALTER TABLE queries ADD COLUMN notify_expires INTEGER
    """,
    # Bank lanes (issue 16): a task is worked by the owner of its bank's lane
    # (hub.store.lanes), not leased one by one; the query counts its pending
    # banks itself, moved by the group commit (hub.store.batches).
    """
    ALTER TABLE queries ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
    UPDATE queries SET pending = (SELECT COUNT(*) FROM bank_tasks t
        WHERE t.query_id = queries.query_id AND t.state = 'PENDING');
    DROP INDEX bank_tasks_pending;
    DROP INDEX bank_tasks_by_owner;
    CREATE INDEX bank_tasks_pending_by_bank ON bank_tasks (bank_code) WHERE state = 'PENDING'
    """,
]

PROGRESS = "cardlookup_progress"
"""The notification channel of bank outcomes and READY queries."""
WORK = "cardlookup_work"
"""The notification channel of new queries (their id): the lane owners
pick up the tasks of their banks."""


@dataclass(frozen=True)
class Task:
    """A PENDING bank task, as a lane owner picks it up."""

    query_id: str
    bank_code: str
    attempt_count: int
    """The calls made so far whose end was recorded."""
    last_error: str
    """The last transient error recorded (survives a replica), or ''."""
    create_time: dt.datetime
    due: dt.datetime
    consent_text_version: str
    subject: Sealed | None
    """The query's sealed subject (None once the report is built)."""


@dataclass(frozen=True)
class Progress:
    """A PROGRESS notification: one bank's final outcome (`bank` set), or
    the query turning READY (`bank` None). Carries no personal data."""

    query_id: str
    bank: BankProgress | None
    pending: int

    def encode(self) -> str:
        b = self.bank
        if b is None:
            return json.dumps([self.query_id])
        finish = to_micros(b.finish_time) if b.finish_time else None
        return json.dumps(
            [self.query_id, b.bank_code, b.state.value, b.reason, b.attempt_count, b.card_count, finish, self.pending]
        )

    def encode_before_pending(self) -> str:
        """The encoded outcome up to its pending count: the database appends
        the count and the closing bracket (PostgreSQL's finish_bank counts
        and notifies in one statement)."""
        encoded = self.encode()
        return encoded[: encoded.rindex(",") + 1] + " "

    @classmethod
    def decode(cls, payload: str) -> Progress:
        v: list[Any] = json.loads(payload)
        if len(v) == 1:
            return cls(str(v[0]), None, 0)
        bank = BankProgress(str(v[1]), BankState(v[2]), str(v[3]), int(v[4]), int(v[5]), from_micros_or_none(v[6]))
        return cls(str(v[0]), bank, int(v[7]))


_UNFINISHED = (QueryState.ACCEPTED.value, QueryState.RUNNING.value)


_INSERT_QUERY = (
    "INSERT INTO queries (query_id, user_id, state, bank_codes, consent_text_version,"
    " create_time, report_due_time, subject_key, subject_ciphertext, pending)"
    " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (query_id) DO NOTHING"
)
_PG_INSERT = (
    f"WITH q AS ({_INSERT_QUERY} RETURNING query_id), t AS (INSERT INTO bank_tasks"
    " (query_id, bank_code, position, state) SELECT q.query_id, b.code, b.n - 1, 'PENDING'"
    " FROM q, unnest(?::text[]) WITH ORDINALITY AS b (code, n))"
    f" SELECT pg_notify('{WORK}', query_id) FROM q"
)
"""The query, its tasks and its WORK announcement in one statement
(data-modifying CTEs run to completion; nothing is written on a conflict)."""
_PG_COMPLETE = (
    "WITH q AS (UPDATE queries SET state = ?, ready_time = ?, report_expire_time = ?, subject_key = NULL,"
    " subject_ciphertext = NULL WHERE query_id = ? AND state IN (?, ?) RETURNING query_id),"
    " r AS (INSERT INTO reports (query_id, data_key, ciphertext, generate_time, expire_time)"
    " SELECT query_id, ?::bytea, ?::bytea, ?::bigint, ?::bigint FROM q),"
    " b AS (UPDATE bank_tasks SET answer_key = NULL, answer_ciphertext = NULL"
    " WHERE query_id IN (SELECT query_id FROM q))"
    " SELECT pg_notify(?, ?) FROM q"
)


def _query_row(new: NewQuery, subject: Sealed, create_time: dt.datetime, due: dt.datetime) -> tuple[Any, ...]:
    return (
        new.query_id,
        new.user_id,
        QueryState.ACCEPTED.value,
        ",".join(new.bank_codes),
        new.consent_text_version,
        to_micros(create_time),
        to_micros(due),
        subject.wrapped_key,
        subject.ciphertext,
        len(new.bank_codes),
    )


class QueryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("queries", MIGRATIONS)

    # -- writes --------------------------------------------------------------

    async def insert(self, new: NewQuery, subject: Sealed, create_time: dt.datetime, due: dt.datetime) -> bool:
        """Writes the query and one PENDING task per bank in one transaction,
        and announces it on WORK (the lane owners pick its tasks up).
        Returns False (and writes nothing) if the query id exists."""

        async def run(conn: Any) -> bool:
            cur = await conn.execute(_INSERT_QUERY, _query_row(new, subject, create_time, due))
            if cur.rowcount == 0:
                return False
            await conn.executemany(
                "INSERT INTO bank_tasks (query_id, bank_code, position, state) VALUES (?,?,?,?)",
                [(new.query_id, code, i, BankState.PENDING.value) for i, code in enumerate(new.bank_codes)],
            )
            if self._db.shared:
                await conn.notify(WORK, new.query_id)
            return True

        if self._db.dialect == "postgresql":
            # One autocommit statement instead of five round trips (issue 16).
            row = await self._db.write_one(
                _PG_INSERT, (*_query_row(new, subject, create_time, due), list(new.bank_codes))
            )
            return row is not None
        return await self._db.write(run)

    async def pending_tasks(self, bank_codes: Sequence[str], query_ids: Sequence[str] | None = None) -> list[Task]:
        """The PENDING tasks of these banks (of these queries only, if given),
        in one statement: a lane owner's pickup (issue 16 item 3)."""
        if not bank_codes:
            return []
        # The query's columns ride along: the owner builds the bank request
        # from them with no read of its own per query.
        columns = (
            "SELECT t.query_id, t.bank_code, t.attempt_count, t.reason, q.create_time, q.report_due_time,"
            " q.consent_text_version, q.subject_key, q.subject_ciphertext"
            " FROM bank_tasks t JOIN queries q ON q.query_id = t.query_id WHERE t.state = ?"
        )
        if self._db.dialect == "postgresql":
            sql = columns + " AND t.bank_code = ANY(?::text[])"
            params: list[Any] = [BankState.PENDING.value, list(bank_codes)]
            if query_ids is not None:
                sql += " AND t.query_id = ANY(?::text[])"
                params.append(list(query_ids))
        else:
            sql = columns + f" AND t.bank_code IN ({','.join('?' * len(bank_codes))})"
            params = [BankState.PENDING.value, *bank_codes]
            if query_ids is not None:
                sql += f" AND t.query_id IN ({','.join('?' * len(query_ids))})"
                params.extend(query_ids)
        rows = await self._db.fetchall(sql + " ORDER BY t.query_id, t.position", params)
        return [
            Task(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                str(r[3]),
                from_micros(r[4]),
                from_micros(r[5]),
                str(r[6]),
                Sealed(bytes(r[7]), bytes(r[8])) if r[7] is not None else None,
            )
            for r in rows
        ]

    async def complete(self, query_id: str, report: Sealed, ready_time: dt.datetime, expire_time: dt.datetime) -> bool:
        """Stores the sealed report, marks the query READY and deletes what
        is no longer needed: the subject and the per-bank answers."""

        async def run(conn: Any) -> bool:
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
            await conn.notify(PROGRESS, Progress(query_id, None, 0).encode())
            return True

        if self._db.dialect == "postgresql":
            # One autocommit statement instead of six round trips (issue 16).
            row = await self._db.write_one(
                _PG_COMPLETE,
                (
                    QueryState.READY.value,
                    to_micros(ready_time),
                    to_micros(expire_time),
                    query_id,
                    *_UNFINISHED,
                    report.wrapped_key,
                    report.ciphertext,
                    to_micros(ready_time),
                    to_micros(expire_time),
                    PROGRESS,
                    Progress(query_id, None, 0).encode(),
                ),
            )
            return row is not None
        return await self._db.write(run)

    async def expire_due(self, now: dt.datetime) -> list[str]:
        """R11: deletes the sealed report (data key and ciphertext) of every
        READY query whose report has expired, and marks it EXPIRED."""

        async def run(conn: Any) -> list[str]:
            # One atomic UPDATE decides which queries expire: a replica
            # sweeping at the same time waits for the row and then finds it
            # EXPIRED already, so each report is deleted once.
            async with conn.execute(
                "UPDATE queries SET state = ? WHERE state = ? AND report_expire_time <= ? RETURNING query_id",
                (QueryState.EXPIRED.value, QueryState.READY.value, to_micros(now)),
            ) as cur:
                ids = [str(r[0]) for r in await cur.fetchall()]
            for query_id in ids:
                await conn.execute("DELETE FROM reports WHERE query_id = ?", (query_id,))
            return ids

        return await self._db.write(run)

    async def claim_notice(self, query_id: str, now_us: int, expires_us: int) -> bool:
        """Claims the sending of a READY query's SMS (R9) for this replica
        until `expires_us`; False if it was sent or another replica holds an
        unexpired claim."""

        # One autocommit statement: one round trip (issue 16).
        row = await self._db.write_one(
            "UPDATE queries SET notified = 2, notify_expires = ? WHERE query_id = ? AND state = ?"
            " AND (notified = 0 OR (notified = 2 AND notify_expires < ?)) RETURNING query_id",
            (expires_us, query_id, QueryState.READY.value, now_us),
        )
        return row is not None

    async def mark_notified(self, query_id: str) -> None:
        await self._db.execute("UPDATE queries SET notified = 1 WHERE query_id = ?", (query_id,))

    async def release_notice(self, query_id: str) -> None:
        """The send failed: let the next sweep (any replica) try again."""
        await self._db.execute("UPDATE queries SET notified = 0 WHERE query_id = ? AND notified = 2", (query_id,))

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

    async def ready_unnotified_ids(self, now_us: int) -> list[str]:
        """READY queries whose SMS is neither sent nor claimed (or whose
        claim ran out: its replica died between claim and send)."""
        rows = await self._db.fetchall(
            "SELECT query_id FROM queries WHERE state = ? AND (notified = 0 OR (notified = 2 AND notify_expires < ?))"
            " ORDER BY ready_time",
            (QueryState.READY.value, now_us),
        )
        return [str(r[0]) for r in rows]

    async def orphaned_ids(self, finished_before: dt.datetime) -> list[str]:
        """Unfinished queries with no PENDING bank whose last outcome is older
        than `finished_before`: the replica that finished the last bank died
        before building the report; any replica may build it now."""
        rows = await self._db.fetchall(
            "SELECT q.query_id FROM queries q WHERE q.state IN (?, ?) AND NOT EXISTS"
            " (SELECT 1 FROM bank_tasks t WHERE t.query_id = q.query_id AND (t.state = ? OR t.finish_time >= ?))",
            (*_UNFINISHED, BankState.PENDING.value, to_micros(finished_before)),
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


def _progress(r: Any) -> BankProgress:
    return BankProgress(
        bank_code=str(r["bank_code"]),
        state=BankState(r["state"]),
        reason=str(r["reason"]),
        attempt_count=int(r["attempt_count"]),
        card_count=int(r["card_count"]),
        finish_time=from_micros_or_none(r["finish_time"]),
    )


def _record(r: Any, banks: Iterable[BankProgress]) -> QueryRecord:
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
