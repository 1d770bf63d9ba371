"""The store side of bank lanes (issue 16), on both stores: lane rounds
spread lanes by fair share and never take a live replica's lane; the group
commit fences outcomes by lane epoch and task state, moves each query's
pending count so that exactly one outcome sees 0, and announces each
outcome on PROGRESS in Progress's own format."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from hub.core.domain import BankState, NewQuery, QueryState, Subject
from hub.keys.crypto import Sealed
from hub.store.batches import Failure, GroupCommit, Outcome
from hub.store.db import open_database
from hub.store.lanes import LaneStore
from hub.store.queries import PROGRESS, Progress, QueryStore
from tests import stores

pytestmark = pytest.mark.both_stores

BANKS = ["102", "103", "104", "105"]
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SECOND = 1_000_000


def _query(query_id: str) -> NewQuery:
    return NewQuery(query_id, "user-1", Subject("name", "id"), tuple(BANKS), "2022-03-01")


async def test_lane_rounds_share_the_lanes_and_never_take_a_live_owners(tmp_path: Path) -> None:
    db = await open_database(stores.database_for(tmp_path))
    try:
        lanes = LaneStore(db)
        await lanes.migrate()
        await lanes.ensure(BANKS)
        a = await lanes.round("a", 0, 10 * SECOND)
        assert sorted(a.held) == BANKS and a.live == 1 and set(a.held.values()) == {1}
        # B joins: its share is 2, but every lane is A's and unexpired.
        b = await lanes.round("b", SECOND, 11 * SECOND)
        assert b.held == {} and b.live == 2 and b.share == 2
        a = await lanes.round("a", 2 * SECOND, 12 * SECOND)
        assert len(a.held) == 4 and a.share == 2  # the keeper hands the surplus over
        for code in BANKS[2:]:
            await lanes.release("a", code, a.held[code])
        b = await lanes.round("b", 3 * SECOND, 13 * SECOND)
        assert sorted(b.held) == BANKS[2:] and set(b.held.values()) == {2} and b.claimed == frozenset(BANKS[2:])
        # A dies: once its lanes and heartbeat expire, B takes them at a new epoch.
        b = await lanes.round("b", 12 * SECOND + 1, 22 * SECOND)
        assert b.live == 1 and sorted(b.held) == BANKS and b.held[BANKS[0]] == 2
        assert await lanes.owners() == dict.fromkeys(BANKS, "b")
        await lanes.leave("b")
        assert await lanes.owners() == dict.fromkeys(BANKS, None)
    finally:
        await db.close()


async def test_the_group_commit_fences_counts_and_announces(tmp_path: Path) -> None:
    db = await open_database(stores.database_for(tmp_path))
    heard: list[Progress] = []
    batch = GroupCommit(db, "a")
    try:
        queries, lanes = QueryStore(db), LaneStore(db)
        await queries.migrate()
        await lanes.migrate()
        await lanes.ensure(BANKS)
        epochs = (await lanes.round("a", 0, 2**62)).held
        await db.listen(PROGRESS, lambda payload: heard.append(Progress.decode(payload)))
        sealed = Sealed(b"k", b"c")
        assert await queries.insert(_query("q1"), sealed, NOW, NOW + dt.timedelta(days=1))
        assert {t.bank_code for t in await queries.pending_tasks(BANKS)} == set(BANKS)

        def outcome(code: str, epoch: int, attempts: int = 1) -> Outcome:
            return Outcome("q1", code, epoch, BankState.ANSWERED, "", attempts, 2, sealed, NOW)

        # An attempt record and a failure count calls; counts only grow.
        await batch.add(Failure("q1", "105", epochs["105"], None, 2))
        await batch.add(Failure("q1", "105", epochs["105"], "UNAVAILABLE", 1))
        # A stale epoch writes nothing; three outcomes in one batch count down to 1.
        results = await asyncio.gather(
            batch.add(outcome("102", epochs["102"] + 1)),
            *(batch.add(outcome(code, epochs[code])) for code in BANKS[:3]),
        )
        assert results[0] is None and sorted(results[1:]) == [1, 2, 3]  # type: ignore[type-var]
        assert await batch.add(outcome("102", epochs["102"])) is None  # final already
        assert await batch.add(outcome("105", epochs["105"], 3)) == 0  # the last one: its writer builds the report
        record = await queries.get("q1")
        assert record is not None and record.state == QueryState.RUNNING
        assert [b.state for b in record.banks] == [BankState.ANSWERED] * 4
        assert [b.attempt_count for b in record.banks] == [1, 1, 1, 3]
        assert await queries.pending_tasks(BANKS) == []
        for _ in range(100):
            if len(heard) == 4:
                break
            await asyncio.sleep(0.02)
        assert sorted(p.pending for p in heard) == [0, 1, 2, 3]
        last = next(p for p in heard if p.pending == 0)
        assert last.bank is not None and (last.bank.bank_code, last.bank.attempt_count) == ("105", 3)
        assert last.bank.card_count == 2 and last.bank.finish_time == NOW and last.bank.state == BankState.ANSWERED
        assert heard == sorted(heard, key=lambda p: -p.pending)  # announced in countdown order
    finally:
        await batch.close()
        await db.close()
