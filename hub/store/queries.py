"""The store of queries, their per-bank tasks and their sealed reports.

Tables (component "queries"):
  queries     one row per accepted query: owner, state, times, the bank
              scope, and the subject (name + ID number) sealed, kept only
              while some bank is still pending.
  bank_tasks  one row per (query, bank): state, reason, attempts, and the
              bank's validated masked answer sealed until the report is built.
  reports     one row per READY query: the report sealed under its own data
              key; deleted (crypto-shredded) when it expires (R11).

Replicas (issue 8): every PENDING bank task is leased to one hub replica at
a time (`lease_owner`, `lease_expires`), claimed with `FOR UPDATE SKIP
LOCKED` on PostgreSQL, renewed while its call runs, and taken over by
another replica once it expires. `lease_epoch` grows at every claim and is
the fencing token: an attempt or an outcome is written only with the epoch
the writer claimed, so a replica that lost its lease cannot write. Each
outcome and each READY is announced on the PROGRESS channel (LISTEN/NOTIFY
on PostgreSQL), which is how WatchQuery on any replica follows a query
worked on by another. A READY query's SMS is claimed before it is sent
(`notified`: 0 not yet, 2 claimed until `notify_expires`, 1 sent), so one
replica sends it.

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
]

PROGRESS = "cardlookup_progress"
"""The notification channel of bank outcomes and READY queries."""


@dataclass(frozen=True)
class Claim:
    """A bank task this replica holds the lease of."""

    query_id: str
    bank_code: str
    epoch: int
    attempt_count: int
    last_error: str
    """The last transient error recorded (survives a replica), or ''."""
    prepaid_until: int = 0
    """For a task leased at insert: its first attempt was counted by the
    insert itself, and may be made without asking the store (no other
    replica can hold the task) until this wall time in micros; 0 otherwise."""


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
_LOCK_QUERY = "UPDATE queries SET state = ? WHERE query_id = ? AND state IN (?, ?)"
_FINISH_TASK = (
    "UPDATE bank_tasks SET state = ?, reason = ?, attempt_count = ?, card_count = ?, finish_time = ?,"
    " answer_key = ?, answer_ciphertext = ?, lease_owner = NULL, lease_expires = NULL"
    " WHERE query_id = ? AND bank_code = ? AND state = ?"
)
_COUNT_PENDING = "SELECT COUNT(*) FROM bank_tasks WHERE query_id = ? AND state = ?"


class QueryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("queries", MIGRATIONS)

    # -- writes --------------------------------------------------------------

    async def insert(
        self,
        new: NewQuery,
        subject: Sealed,
        create_time: dt.datetime,
        due: dt.datetime,
        lease: tuple[str, int] | None = None,
    ) -> bool:
        """Writes the query and one PENDING task per bank in one transaction,
        the tasks leased to `lease` = (owner, expires in micros) if given (the
        accepting replica starts the calls at once, at epoch 1). Returns False
        (and writes nothing) if the query id exists.

        A leased task's first attempt is counted here (attempt_count 1): it
        is durable before the call, as `start_attempt` would make it, and it
        saves one write per bank (issue 10). The caller then makes that first
        call without `start_attempt` while its lease cannot have expired
        (`Claim.prepaid_until`), and with `start_attempt(count=False)` after."""

        async def run(conn: Any) -> bool:
            cur = await conn.execute(
                "INSERT INTO queries (query_id, user_id, state, bank_codes, consent_text_version,"
                " create_time, report_due_time, subject_key, subject_ciphertext) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (query_id) DO NOTHING",
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
            owner, expires = lease if lease else (None, None)
            epoch = attempts = 1 if lease else 0
            await conn.executemany(
                "INSERT INTO bank_tasks (query_id, bank_code, position, state, lease_owner, lease_epoch,"
                " lease_expires, attempt_count) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (new.query_id, code, i, BankState.PENDING.value, owner, epoch, expires, attempts)
                    for i, code in enumerate(new.bank_codes)
                ],
            )
            return True

        return await self._db.write(run)

    async def record_failure(self, query_id: str, bank_code: str, epoch: int, reason: str) -> None:
        """Keeps a PENDING bank's last transient error (fenced by epoch)."""
        await self._db.execute(
            "UPDATE bank_tasks SET reason = ? WHERE query_id = ? AND bank_code = ? AND state = ? AND lease_epoch = ?",
            (reason, query_id, bank_code, BankState.PENDING.value, epoch),
        )

    # -- leases --------------------------------------------------------------

    async def claim(
        self, owner: str, now_us: int, expires_us: int, limit: int, *, reclaim: bool = False
    ) -> list[Claim]:
        """Leases up to `limit` PENDING tasks that nobody holds (no lease, or
        an expired one) to `owner`, each at a new epoch. With `reclaim`, the
        owner's own unexpired leases are taken too (a restart under the same
        replica id, or the only process of a SQLite store)."""
        mine = " OR lease_owner = ?" if reclaim else ""
        params: tuple[Any, ...] = (owner, expires_us, BankState.PENDING.value, now_us)
        if reclaim:
            params += (owner,)

        async def run(conn: Any) -> list[Claim]:
            async with conn.execute(
                "UPDATE bank_tasks SET lease_owner = ?, lease_epoch = lease_epoch + 1, lease_expires = ?"
                " WHERE (query_id, bank_code) IN (SELECT query_id, bank_code FROM bank_tasks"
                f" WHERE state = ? AND (lease_expires IS NULL OR lease_expires < ?{mine})"
                f" LIMIT ?{conn.skip_locked})"
                " RETURNING query_id, bank_code, lease_epoch, attempt_count, reason",
                (*params, limit),
            ) as cur:
                rows = await cur.fetchall()
            return [Claim(str(r[0]), str(r[1]), int(r[2]), int(r[3]), str(r[4])) for r in rows]

        return await self._db.write(run)

    async def renew(self, owner: str, expires_us: int) -> set[tuple[str, str]]:
        """Extends every lease `owner` still holds; returns the (query, bank)
        pairs renewed (a task missing from it was taken over)."""

        async def run(conn: Any) -> set[tuple[str, str]]:
            async with conn.execute(
                "UPDATE bank_tasks SET lease_expires = ? WHERE lease_owner = ? AND state = ?"
                " RETURNING query_id, bank_code",
                (expires_us, owner, BankState.PENDING.value),
            ) as cur:
                return {(str(r[0]), str(r[1])) for r in await cur.fetchall()}

        return await self._db.write(run)

    async def release(self, owner: str) -> None:
        """Gives up every lease of `owner` (a stopping replica), so another
        replica resumes those banks at once instead of after the lease."""
        await self._db.execute(
            "UPDATE bank_tasks SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ? AND state = ?",
            (owner, BankState.PENDING.value),
        )

    async def release_tasks(self, owner: str, keys: Sequence[tuple[str, str]]) -> None:
        """Gives up `owner`'s leases of these (query, bank) pairs."""

        async def run(conn: Any) -> None:
            await conn.executemany(
                "UPDATE bank_tasks SET lease_owner = NULL, lease_expires = NULL"
                " WHERE query_id = ? AND bank_code = ? AND lease_owner = ? AND state = ?",
                [(q, b, owner, BankState.PENDING.value) for q, b in keys],
            )

        await self._db.write(run)

    async def start_attempt(self, query_id: str, bank_code: str, epoch: int, count: bool = True) -> int | None:
        """Counts an attempt durably BEFORE the call is made (a crash during
        the call still shows it). Returns the new attempt count, or None if
        the lease was lost (another replica holds the task now: don't call).
        With `count=False` only the lease is checked (an attempt the insert
        counted already)."""

        async def run(conn: Any) -> int | None:
            async with conn.execute(
                "UPDATE bank_tasks SET attempt_count = attempt_count + ?"
                " WHERE query_id = ? AND bank_code = ? AND state = ? AND lease_epoch = ? RETURNING attempt_count",
                (int(count), query_id, bank_code, BankState.PENDING.value, epoch),
            ) as cur:
                row = await cur.fetchone()
            return int(row[0]) if row else None

        return await self._db.write(run)

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
        epoch: int | None = None,
    ) -> int | None:
        """Makes a bank's outcome final, atomically with its sealed answer,
        and announces it on PROGRESS. With `epoch`, only while that lease is
        held (fencing). Returns how many banks of the query are still
        pending, or None if nothing changed (already final, or lease lost)."""
        fence = "" if epoch is None else " AND lease_epoch = ?"
        fence_params: tuple[int, ...] = () if epoch is None else (epoch,)

        finished = (
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
            *fence_params,
        )
        progress = BankProgress(bank_code, state, reason, attempt_count, card_count, finish_time)
        running = (QueryState.RUNNING.value, query_id, *_UNFINISHED)
        still_pending = (query_id, BankState.PENDING.value)

        # Lock the query row first: finishes of one query's banks then run
        # one at a time, so exactly one of them sees 0 pending, on every
        # replica (READ COMMITTED: the count is a statement that starts
        # after the lock is held, so it sees every earlier finish).
        async def run(conn: Any) -> int | None:
            await conn.execute(_LOCK_QUERY, running)
            cur = await conn.execute(_FINISH_TASK + fence, finished)
            if cur.rowcount == 0:
                return None
            async with conn.execute(_COUNT_PENDING, still_pending) as c:
                row = await c.fetchone()
            pending = int(row[0]) if row else 0
            await conn.notify(PROGRESS, Progress(query_id, progress, pending).encode())
            return pending

        # The same on PostgreSQL in two statements instead of four (issue
        # 10): the lock rides along as a data-modifying CTE (PostgreSQL runs
        # it to completion whether or not the UPDATE reads it; the fence is
        # re-checked on the row's latest version), and the count goes out
        # with its notification, whose payload ends with the count.
        async def run_pg(conn: Any) -> int | None:
            cur = await conn.execute(
                f"WITH running AS ({_LOCK_QUERY} RETURNING 1) {_FINISH_TASK}{fence} RETURNING 1", (*running, *finished)
            )
            if cur.rowcount == 0:
                return None
            head = Progress(query_id, progress, 0).encode_before_pending()
            async with conn.execute(
                f"SELECT c, pg_notify(?, ? || c || ']') FROM ({_COUNT_PENDING}) AS pending (c)",
                (PROGRESS, head, *still_pending),
            ) as c:
                row = await c.fetchone()
            return int(row[0]) if row else 0

        return await self._db.write(run_pg if self._db.dialect == "postgresql" else run)

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

        async def run(conn: Any) -> bool:
            cur = await conn.execute(
                "UPDATE queries SET notified = 2, notify_expires = ? WHERE query_id = ? AND state = ?"
                " AND (notified = 0 OR (notified = 2 AND notify_expires < ?))",
                (expires_us, query_id, QueryState.READY.value, now_us),
            )
            return bool(cur.rowcount)

        return await self._db.write(run)

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
