"""The erasure's SQL on both stores (issue 22): a closure fences the
user's pending bank tasks, so a late outcome or attempt of the replica that
held the lease writes nothing; it announces the ended query on PROGRESS;
and it leaves the rows of other users alone."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from hub.core.domain import BankState, NewQuery, Subject
from hub.keys.crypto import Sealed
from hub.store.batches import Failure, GroupCommit, Outcome
from hub.store.db import Database, open_database
from hub.store.erasure import USER_DELETED, ErasureStore
from hub.store.lanes import LaneStore
from hub.store.queries import PROGRESS, Progress, QueryStore
from hub.store.users import UserRow, UserStore
from tests import stores

pytestmark = pytest.mark.both_stores
NOW = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


async def schema(tmp_path: Path) -> Database:
    db = await open_database(stores.database_for(tmp_path))
    await ErasureStore(db).migrate_with_erased_tables()
    return db


def user(user_id: str) -> UserRow:
    return UserRow(user_id, "person-" + user_id, b"k", b"c", "138****0000", "110000", None, "h", 0, None, NOW, NOW)


async def test_a_closure_fences_the_running_query_and_spares_others(tmp_path: Path) -> None:
    db = await schema(tmp_path)
    batch = GroupCommit(db, "A")
    try:
        users, queries, erasure, lanes = UserStore(db), QueryStore(db), ErasureStore(db), LaneStore(db)
        await lanes.migrate()
        await lanes.ensure(["102", "103"])
        epoch = (await lanes.round("A", 0, 2**62)).held["103"]  # replica A owns the banks' lanes
        heard: list[Progress] = []
        await db.listen(PROGRESS, lambda payload: heard.append(Progress.decode(payload)))
        for uid in ("leaver", "stayer"):
            await users.upsert(user(uid), keep_password=False)
            new = NewQuery("q-" + uid, uid, Subject("n", "i"), ("102", "103"), "v1")
            assert await queries.insert(new, Sealed(b"k", b"c"), NOW, NOW + dt.timedelta(days=1))

        erased = await erasure.erase_user("leaver", NOW, NOW + dt.timedelta(days=7))
        assert erased is not None and erased.ended_query_ids == ("q-leaver",) and erased.query_count == 1

        # Replica A was calling bank 103 for the leaver: its attempt record and
        # its late outcome write nothing (the tasks are gone: the fence).
        await batch.add(Failure("q-leaver", "103", epoch, None, 1))
        late = await batch.add(Outcome("q-leaver", "103", epoch, BankState.ANSWERED, "", 1, 2, Sealed(b"k", b"a"), NOW))
        assert late is None
        assert await queries.get("q-leaver") is None and await users.get("leaver") is None
        assert await db.fetch_one("SELECT 1 FROM bank_tasks WHERE query_id = ?", ("q-leaver",)) is None
        assert await erasure.erase_user("leaver", NOW, NOW) is None  # already gone
        # The other user's query runs on.
        done = await batch.add(Outcome("q-stayer", "103", epoch, BankState.ANSWERED, "", 1, 0, None, NOW))
        assert done == 1
        for _ in range(3000):  # PostgreSQL delivers notifications on its listening connection
            if any(p.query_id == "q-leaver" for p in heard):
                break
            await asyncio.sleep(0.01)
        ended = [p for p in heard if p.query_id == "q-leaver"]
        assert len(ended) == 1 and ended[0].bank is not None and ended[0].bank.reason == USER_DELETED
        row = await db.fetch_one("SELECT person_key, lookup_count FROM closed_accounts")
        assert row is not None and (row[0], row[1]) == ("person-leaver", 1)
    finally:
        await batch.close()
        await db.close()
