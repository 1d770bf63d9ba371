"""Account closure and retention limits (issue 22): the SQL that erases a
user and that removes what the hub keeps past R11 once its period is over.

Tables (component "erasure", its own migration list):
  closed_accounts  one keyed record per closed account: the person key
                   (the keyed hash of the ID number the users table already
                   held; HMAC under the index key, not reversible without
                   it), how many lookups the account made, when the latest
                   report was generated and when the account was closed.
                   No user id, no name, no phone. It keeps the cooldown
                   (R12) of a person who closes an account and enrols again,
                   and tells the operator that lookups happened; deleted at
                   `expire_time` (closure_record_retention). `compacted`:
                   the tables were rewritten since (PostgreSQL).
  user_data_keys   one data key per user (crypto-shredding): 32 random
                   bytes sealed under the hub's key-encryption key. The
                   user's identity record is encrypted under it, so deleting
                   this one row makes every copy of that record unreadable
                   (hub.identity.closure).

`erase_user` deletes every row of one user in one transaction, in the lock
order of the other writers (users, then queries, then bank tasks), so it
never deadlocks with a bank outcome being written: a running query's bank
tasks and its sealed subject and answers go with it (deleting a task fences
it: every task write is conditioned on its PENDING row and lease epoch). Each query that still
had a PENDING bank is announced on PROGRESS as a bank outcome with reason
USER_DELETED, so the replica calling that bank cancels the call; an outcome
written later finds no task (its fence fails) and is discarded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hub.core.domain import BankProgress, BankState, QueryState
from hub.keys.crypto import Sealed
from hub.store import card_cases, card_records, device_keys, identity, user_keys
from hub.store.db import Conn, Database, from_micros_or_none, to_micros
from hub.store.queries import PROGRESS, Progress, QueryStore
from hub.store.statements import erasure as sql
from hub.store.users import UserStore

COMPONENT = "erasure"
MIGRATIONS = [
    """
    CREATE TABLE closed_accounts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        person_key TEXT NOT NULL,
        lookup_count INTEGER NOT NULL,
        last_ready_time INTEGER,
        close_time INTEGER NOT NULL,
        expire_time INTEGER NOT NULL,
        compacted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX closed_accounts_by_person ON closed_accounts (person_key);
    CREATE TABLE user_data_keys (
        user_id TEXT PRIMARY KEY,
        wrapped_key BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        create_time INTEGER NOT NULL
    )
    """,
]

USER_DELETED = "USER_DELETED"
"""The reason on the PROGRESS announcement of a query ended by closure."""

ERASED_USER = ""
"""What an SMS verification's user id becomes: the row stays only as an
abuse counter (keyed person and phone hashes, a time)."""

ERASED_TABLES = (
    "users",
    "user_data_keys",
    "user_keys",
    "device_keys",
    "queries",
    "bank_tasks",
    "reports",
    "report_access_events",
    "ready_notices",
    "query_requests",
    "verifications",
    "card_cases",
    "card_records",
    "card_tracking",
)
"""Every table a closure deletes from (or blanks a column of)."""
USER_ID_TABLES = sql.USER_ID_TABLES
"""The tables with a user id column (the rest hold query ids)."""

_PENDING = BankState.PENDING.value
_ENROLMENT_GRACE = dt.timedelta(hours=1)
"""A data key with no user row is an orphan only after this long (an
enrolment stores the key first, then the user)."""


@dataclass(frozen=True)
class Erased:
    """What one closure removed."""

    query_count: int
    """The user's queries erased (history included)."""
    ended_query_ids: tuple[str, ...]
    """Those that were still running (a bank PENDING)."""


@dataclass(frozen=True)
class Retention:
    """How long each kept item lives (hub.core.config.Timings)."""

    lookup_history: dt.timedelta
    access_events: dt.timedelta
    card_cases: dt.timedelta
    card_records: dt.timedelta
    abuse_counters: dt.timedelta
    closure_records: dt.timedelta


@dataclass(frozen=True)
class Swept:
    """Rows removed by one retention sweep, per item."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _marks(values: list[str]) -> str:
    return ",".join("?" * len(values))


async def _delete_queries(conn: Conn, ids: list[str]) -> None:
    """Deletes a list of queries with everything hanging off them."""
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for statement in sql.DELETE_QUERIES:
            await conn.execute(statement.format(marks=_marks(chunk)), chunk)


class ErasureStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def migrate_with_erased_tables(self) -> None:
        """The erasure's own tables and every component's that a closure
        erases from (ERASED_TABLES), for tools and tests that use the store
        without a whole hub (which migrates each where it installs it)."""
        await QueryStore(self._db).migrate()
        await UserStore(self._db).migrate()
        for module in (identity, user_keys, device_keys, card_records, card_cases):
            await self._db.migrate(module.COMPONENT, module.MIGRATIONS)
        await self.migrate()

    # --- the per-user data key -------------------------------------------------

    async def data_key(self, user_id: str) -> Sealed | None:
        r = await self._db.fetch_one(sql.DATA_KEY, (user_id,))
        return Sealed(bytes(r["wrapped_key"]), bytes(r["ciphertext"])) if r else None

    async def ensure_data_key(self, user_id: str, candidate: Sealed, now: dt.datetime) -> Sealed:
        """The user's data key: `candidate` if the user had none (two
        concurrent enrolments agree on the first one stored)."""

        async def run(conn: Conn) -> Sealed:
            await conn.execute(
                sql.INSERT_DATA_KEY,
                (user_id, candidate.wrapped_key, candidate.ciphertext, to_micros(now)),
            )
            r = await conn.fetch_one(sql.DATA_KEY, (user_id,))
            assert r is not None  # inserted above, or there already
            return Sealed(bytes(r[0]), bytes(r[1]))

        return await self._db.write(run)

    # --- closure ---------------------------------------------------------------

    async def erase_user(self, user_id: str, now: dt.datetime, closure_expire: dt.datetime) -> Erased | None:
        """Erases the user in one transaction; None if no such user. Leaves
        one keyed `closed_accounts` row and the user's SMS verifications as
        abuse counters (user id and code hash blanked)."""

        async def run(conn: Conn) -> Erased | None:
            user = await conn.fetch_one(sql.USER_ID_HASH + conn.for_update, (user_id,))
            if user is None:
                return None
            queries = list(
                await conn.fetch_all(
                    sql.QUERIES_OF_USER + conn.for_update,
                    (user_id,),
                )
            )
            ids = [str(q[0]) for q in queries]
            ended = sorted(
                str(r[0])
                for r in await conn.fetch_all(
                    sql.PENDING_QUERIES_OF_USER,
                    (_PENDING, user_id),
                )
            )
            # Deleting the tasks is the fence: every write of a bank task is
            # conditioned on its PENDING row and lease epoch, so a replica
            # still calling a bank finds nothing to write, now or later.
            await _delete_queries(conn, ids)
            for statement in sql.DELETE_USER_ROWS:
                await conn.execute(statement, (user_id,))
            await conn.execute(sql.BLANK_VERIFICATIONS, (ERASED_USER, user_id))
            ready = [int(q[1]) for q in queries if q[1] is not None]
            await conn.execute(
                sql.INSERT_CLOSED_ACCOUNT,
                (str(user[0]), len(ids), max(ready) if ready else None, to_micros(now), to_micros(closure_expire)),
            )
            for query_id in ended:
                ending = BankProgress("", BankState.NOT_ANSWERED, USER_DELETED, 0, 0, now)
                await conn.notify(PROGRESS, Progress(query_id, ending, 0).encode())
            return Erased(len(ids), tuple(ended))

        return await self._db.write(run)

    async def purge_copies(self, *, full: bool = False) -> None:
        """After an erasure: the erased rows' old copies go too.

        SQLite (secure_delete has zeroed them in the file): a WAL checkpoint
        that truncates the WAL. PostgreSQL keeps a deleted row's bytes in
        its page until the page is rewritten (VACUUM only marks the space
        free): `full` rewrites the tables that hold user ids (VACUUM FULL,
        new files, the old ones unlinked), each locked while it is copied;
        the retention sweep does it once after any closures
        (`compact_after_closures`). The server's WAL segments holding the
        rows are removed at its next checkpoints when `wal_recycle = off`
        (docs/data-inventory.md)."""
        if self._db.dialect == "postgresql":
            if full:
                await self._db.execute(sql.VACUUM_FULL)
            return
        checkpoint = getattr(self._db, "checkpoint", None)
        if checkpoint is not None:
            for _ in range(3):
                if await checkpoint():
                    return

    async def compact_after_closures(self) -> int:
        """Rewrites the user-id tables once for every closure since the last
        rewrite (PostgreSQL; `purge_copies(full=True)`), under a database
        lock, so one replica does it and a restart forgets none. Returns how
        many closures it covered (0: nothing to do, or SQLite)."""
        if self._db.dialect != "postgresql":
            return 0
        async with self._db.exclusive("erasure:compaction"):
            r = await self._db.fetch_one(sql.UNCOMPACTED)
            if r is None or not r[0]:
                return 0
            await self.purge_copies(full=True)
            await self._db.execute(sql.MARK_COMPACTED, (int(r[1]),))
            return int(r[0])

    async def closed_ready_time(self, person_key: str, now: dt.datetime) -> dt.datetime | None:
        """The latest report time of this person's closed accounts (R12
        spans a closure), from records not yet past their retention."""
        value = await self._db.fetch_val(sql.LAST_READY_OF_PERSON, (person_key, to_micros(now)))
        return from_micros_or_none(value)

    # --- retention -------------------------------------------------------------

    async def sweep(self, now: dt.datetime, keep: Retention) -> Swept:
        """Deletes what is past its retention, in one transaction."""

        def before(period: dt.timedelta) -> int:
            return to_micros(now - period)

        async def run(conn: Conn) -> Swept:
            counts: dict[str, int] = {}
            # Lookup history: EXPIRED queries (their report is gone, R11)
            # created longer ago than the period, with all that hangs off them.
            ids = [
                str(r[0])
                for r in await conn.fetch_all(
                    sql.EXPIRED_QUERIES_BEFORE,
                    (QueryState.EXPIRED.value, before(keep.lookup_history)),
                )
            ]
            await _delete_queries(conn, ids)
            counts["lookup_history"] = len(ids)
            for item, statement, period in (
                ("access_events", sql.DELETE_ACCESS_EVENTS_BEFORE, keep.access_events),
                ("card_cases", sql.DELETE_CARD_CASES_BEFORE, keep.card_cases),
                ("card_records", sql.DELETE_CARD_RECORDS_BEFORE, keep.card_records),
                ("abuse_counters", sql.DELETE_ABUSE_COUNTERS_BEFORE, keep.abuse_counters),
                ("query_requests", sql.DELETE_QUERY_REQUESTS_BEFORE, keep.lookup_history),
            ):
                counts[item] = max(await conn.execute(statement, (before(period),)), 0)
            closed = await conn.execute(sql.DELETE_EXPIRED_CLOSURES, (to_micros(now),))
            counts["closure_records"] = max(closed, 0)
            # Rows a racing request left for a user closed meanwhile.
            # (A data key is made just before its user's row: only old ones.)
            orphans = 0
            for table, extra, params in (
                ("card_tracking", "", ()),
                ("user_keys", "", ()),
                ("user_data_keys", sql.ORPHAN_BEFORE, (before(_ENROLMENT_GRACE),)),
            ):
                deleted = await conn.execute(sql.DELETE_ORPHANS.format(table=table) + extra, params)
                orphans += max(deleted, 0)
            counts["orphans"] = orphans
            return Swept(counts)

        return await self._db.write(run)
