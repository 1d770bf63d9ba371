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

from hub.core.domain import BankProgress, BankState, NewQuery, QueryRecord, QueryState
from hub.keys.crypto import Sealed
from hub.store.db import Conn, Database, from_micros, from_micros_or_none, to_micros
from hub.store.statements import queries as sql

MIGRATIONS = sql.MIGRATIONS
PROGRESS = sql.PROGRESS
WORK = sql.WORK


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

    @classmethod
    def decode(cls, payload: str) -> Progress:
        v: list[Any] = json.loads(payload)
        if len(v) == 1:
            return cls(str(v[0]), None, 0)
        bank = BankProgress(str(v[1]), BankState(v[2]), str(v[3]), int(v[4]), int(v[5]), from_micros_or_none(v[6]))
        return cls(str(v[0]), bank, int(v[7]))


@dataclass(frozen=True)
class QueryGauges:
    """What the metrics export about stored queries (hub.telemetry.metrics)."""

    by_state: dict[str, int]
    """Stored queries per state (states with none are absent)."""
    oldest_report: int | None
    """generate_time (microseconds) of the oldest stored report."""
    oldest_unfinished: int | None
    """create_time (microseconds) of the oldest query not yet READY."""


_UNFINISHED = (QueryState.ACCEPTED.value, QueryState.RUNNING.value)


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

        async def run(conn: Conn) -> bool:
            if await conn.execute(sql.INSERT_QUERY, _query_row(new, subject, create_time, due)) == 0:
                return False
            await conn.executemany(
                sql.INSERT_TASKS,
                [(new.query_id, code, i, BankState.PENDING.value) for i, code in enumerate(new.bank_codes)],
            )
            if self._db.shared:
                await conn.notify(WORK, new.query_id)
            return True

        if self._db.dialect == "postgresql":
            # One autocommit statement instead of five round trips (issue 16).
            row = await self._db.write_one(
                sql.PG_INSERT, (*_query_row(new, subject, create_time, due), list(new.bank_codes))
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
        if self._db.dialect == "postgresql":
            statement = sql.PENDING_TASKS + " AND t.bank_code = ANY(?::text[])"
            params: list[Any] = [BankState.PENDING.value, list(bank_codes)]
            if query_ids is not None:
                statement += " AND t.query_id = ANY(?::text[])"
                params.append(list(query_ids))
        else:
            statement = sql.PENDING_TASKS + f" AND t.bank_code IN ({','.join('?' * len(bank_codes))})"
            params = [BankState.PENDING.value, *bank_codes]
            if query_ids is not None:
                statement += f" AND t.query_id IN ({','.join('?' * len(query_ids))})"
                params.extend(query_ids)
        rows = await self._db.fetch_all(statement + sql.PENDING_TASKS_ORDER, params)
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

        async def run(conn: Conn) -> bool:
            ready = (QueryState.READY.value, to_micros(ready_time), to_micros(expire_time), query_id, *_UNFINISHED)
            if await conn.execute(sql.COMPLETE, ready) == 0:
                return False
            await conn.execute(
                sql.INSERT_REPORT,
                (query_id, report.wrapped_key, report.ciphertext, to_micros(ready_time), to_micros(expire_time)),
            )
            await conn.execute(sql.DROP_ANSWERS, (query_id,))
            await conn.notify(PROGRESS, Progress(query_id, None, 0).encode())
            return True

        if self._db.dialect == "postgresql":
            # One autocommit statement instead of six round trips (issue 16).
            row = await self._db.write_one(
                sql.PG_COMPLETE,
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

        async def run(conn: Conn) -> list[str]:
            # One atomic UPDATE decides which queries expire: a replica
            # sweeping at the same time waits for the row and then finds it
            # EXPIRED already, so each report is deleted once.
            expired = (QueryState.EXPIRED.value, QueryState.READY.value, to_micros(now))
            ids = [str(r[0]) for r in await conn.fetch_all(sql.EXPIRE_DUE, expired)]
            for query_id in ids:
                await conn.execute(sql.DELETE_REPORT, (query_id,))
            return ids

        return await self._db.write(run)

    async def claim_notice(self, query_id: str, now_us: int, expires_us: int) -> bool:
        """Claims the sending of a READY query's SMS (R9) for this replica
        until `expires_us`; False if it was sent or another replica holds an
        unexpired claim."""

        # One autocommit statement: one round trip (issue 16).
        row = await self._db.write_one(
            sql.CLAIM_NOTICE,
            (expires_us, query_id, QueryState.READY.value, now_us),
        )
        return row is not None

    async def mark_notified(self, query_id: str) -> None:
        await self._db.execute(sql.MARK_NOTIFIED, (query_id,))

    async def release_notice(self, query_id: str) -> None:
        """The send failed: let the next sweep (any replica) try again."""
        await self._db.execute(sql.RELEASE_NOTICE, (query_id,))

    # -- reads ---------------------------------------------------------------

    async def get(self, query_id: str) -> QueryRecord | None:
        records = await self._records(sql.GET, (query_id,))
        return records[0] if records else None

    async def list_for_user(
        self, user_id: str, limit: int, before: tuple[dt.datetime, str] | None = None
    ) -> list[QueryRecord]:
        if before is None:
            return await self._records(sql.LIST_FOR_USER, (user_id, limit))
        t = to_micros(before[0])
        return await self._records(sql.LIST_FOR_USER_BEFORE, (user_id, t, t, before[1], limit))

    async def latest_ready_time(self, user_id: str) -> dt.datetime | None:
        return from_micros_or_none(await self._db.fetch_val(sql.LATEST_READY_TIME, (user_id,)))

    async def unfinished_for_user(self, user_id: str) -> QueryRecord | None:
        records = await self._records(sql.UNFINISHED_FOR_USER, (user_id, *_UNFINISHED))
        return records[0] if records else None

    async def ready_unnotified_ids(self, now_us: int) -> list[str]:
        """READY queries whose SMS is neither sent nor claimed (or whose
        claim ran out: its replica died between claim and send)."""
        rows = await self._db.fetch_all(sql.READY_UNNOTIFIED, (QueryState.READY.value, now_us))
        return [str(r[0]) for r in rows]

    async def orphaned_ids(self, finished_before: dt.datetime) -> list[str]:
        """Unfinished queries with no PENDING bank whose last outcome is older
        than `finished_before`: the replica that finished the last bank died
        before building the report; any replica may build it now."""
        rows = await self._db.fetch_all(
            sql.ORPHANED,
            (*_UNFINISHED, BankState.PENDING.value, to_micros(finished_before)),
        )
        return [str(r[0]) for r in rows]

    async def subject(self, query_id: str) -> Sealed | None:
        row = await self._db.fetch_one(sql.SUBJECT, (query_id,))
        if row is None or row[0] is None:
            return None
        return Sealed(bytes(row[0]), bytes(row[1]))

    async def answers(self, query_id: str) -> list[tuple[BankProgress, Sealed | None]]:
        rows = await self._db.fetch_all(sql.ANSWERS, (query_id,))
        out: list[tuple[BankProgress, Sealed | None]] = []
        for r in rows:
            sealed = Sealed(bytes(r["answer_key"]), bytes(r["answer_ciphertext"])) if r["answer_key"] else None
            out.append((_progress(r), sealed))
        return out

    async def report(self, query_id: str) -> Sealed | None:
        row = await self._db.fetch_one(sql.REPORT, (query_id,))
        return Sealed(bytes(row[0]), bytes(row[1])) if row else None

    async def gauges(self) -> QueryGauges:
        rows = await self._db.fetch_all(sql.COUNT_BY_STATE)
        report = await self._db.fetch_one(sql.OLDEST_REPORT)
        unfinished = await self._db.fetch_one(sql.OLDEST_UNFINISHED)
        return QueryGauges(
            {str(r["state"]): int(r["n"]) for r in rows},
            report["oldest"] if report is not None else None,
            unfinished["oldest"] if unfinished is not None else None,
        )

    async def _records(self, statement: str, params: Sequence[object]) -> list[QueryRecord]:
        rows = list(await self._db.fetch_all(statement, params))
        if not rows:
            return []
        ids = [str(r["query_id"]) for r in rows]
        marks = ",".join("?" * len(ids))
        tasks: dict[str, list[BankProgress]] = {i: [] for i in ids}
        for t in await self._db.fetch_all(sql.TASKS_OF.format(marks=marks), ids):
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
