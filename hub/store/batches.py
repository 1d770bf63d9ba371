"""Group commit of the fan-out's writes (issue 16): the outcomes and the
failure records of all of a replica's lanes, committed together.

`GroupCommit.add` queues one write and returns once the batch holding it
has committed (so "returned" means "durable"); the batch goes when
`max_rows` writes are queued or `max_wait` seconds after its first one,
whichever comes first, and the next batch fills while one commits. A batch
is one transaction:

- the queries of its outcomes are locked in query-id order (replicas
  committing overlapping queries cannot deadlock);
- the bank tasks are updated in bulk (`unnest` arrays on PostgreSQL),
  each only while it is PENDING and the lane of its bank is still held by
  this replica at the epoch the task ran under (fencing: a replica that
  lost the lane writes nothing);
- each query's `pending` count moves by the outcomes that landed, and each
  outcome is announced on PROGRESS with the count after it (the last one
  of a query carries 0: whoever writes it builds the report).

A batch that fails fails every write in it; each writer retries its own
(the engine's `_stored`, issue 9), so nothing is lost on a full disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hub.core.domain import BankProgress, BankState, QueryState
from hub.keys.crypto import Sealed
from hub.store.db import Conn, Database, to_micros
from hub.store.queries import PROGRESS, Progress
from hub.store.statements import queries as sql


@dataclass(frozen=True)
class Outcome:
    """A bank's final outcome, with its sealed answer (already sealed:
    sealing happens outside the transaction)."""

    query_id: str
    bank_code: str
    epoch: int
    state: BankState
    reason: str
    attempt_count: int
    card_count: int
    answer: Sealed | None
    finish_time: dt.datetime


@dataclass(frozen=True)
class Failure:
    """The calls made so far to a PENDING bank (they survive a crash of the
    lane owner) and, after a transient failure, its last error (`reason`;
    None for the record a call makes as it starts). Counts only grow."""

    query_id: str
    bank_code: str
    epoch: int
    reason: str | None
    attempt_count: int


@dataclass
class _Queued:
    write: Outcome | Failure
    done: asyncio.Future[int | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


_RUNNING = QueryState.RUNNING.value
_ACCEPTED = QueryState.ACCEPTED.value
_PENDING = BankState.PENDING.value


class GroupCommit:
    def __init__(self, db: Database, owner: str, max_rows: int = 512, max_wait: float = 0.005) -> None:
        self._db = db
        self._owner = owner
        self._max_rows = max_rows
        self._max_wait = max_wait
        self._queue: list[_Queued] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches committed (for tests and benchmarks)."""

    async def add(self, write: Outcome | Failure) -> int | None:
        """Queues `write`; returns once its batch committed. For an outcome:
        the query's pending count after it, or None if it was fenced (the
        task is final already, or this replica no longer holds the lane at
        that epoch). Raises what the batch's transaction raised."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="group-commit")
        queued = _Queued(write)
        self._queue.append(queued)
        self._wake.set()
        return await asyncio.shield(queued.done)

    def post(self, write: Outcome | Failure) -> None:
        """Queues `write` without waiting for its commit (a call's own
        attempt record: the call does not wait for it; a failed batch
        leaves it to the next record of that task, whose count is absolute)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="group-commit")
        queued = _Queued(write)
        queued.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(queued)
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queued in self._queue:
            if not queued.done.done():
                queued.done.set_exception(RuntimeError("the group commit is closed"))
        self._queue.clear()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            if len(self._queue) < self._max_rows:
                # Let the batch fill: the other lanes' outcomes arriving
                # within max_wait share this transaction.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._max_wait):
                        while len(self._queue) < self._max_rows:
                            await self._wake.wait()
                            self._wake.clear()
            batch, self._queue = self._queue[: self._max_rows], self._queue[self._max_rows :]
            if self._queue:
                self._wake.set()
            try:
                results = await self._commit([q.write for q in batch])
            except asyncio.CancelledError:
                for queued in batch:
                    if not queued.done.done():
                        queued.done.set_exception(RuntimeError("the group commit is closed"))
                raise
            except Exception as error:
                for queued in batch:
                    if not queued.done.done():
                        queued.done.set_exception(error)
                continue
            self.batches += 1
            for queued, result in zip(batch, results, strict=True):
                if not queued.done.done():
                    queued.done.set_result(result)

    async def _commit(self, writes: list[Outcome | Failure]) -> list[int | None]:
        outcomes = [w for w in writes if isinstance(w, Outcome)]
        failures = [w for w in writes if isinstance(w, Failure)]
        postgres = self._db.dialect == "postgresql"

        async def run(conn: Conn) -> dict[tuple[str, str, int], int]:
            landed: dict[tuple[str, str, int], int] = {}
            if postgres:
                if failures:
                    await conn.execute(sql.PG_FAILURES, (*_failure_arrays(failures), self._owner))
                if outcomes:
                    for row in await conn.fetch_all(sql.PG_OUTCOMES, _outcome_params(outcomes, self._owner)):
                        landed[(str(row[0]), str(row[1]), int(row[2]))] = int(row[3])
                return landed
            for f in failures:
                if await _fenced(conn, f.bank_code, self._owner, f.epoch):
                    await conn.execute(
                        sql.RECORD_FAILURE, (f.reason, f.attempt_count, f.query_id, f.bank_code, _PENDING)
                    )
            for o in outcomes:
                if not await _fenced(conn, o.bank_code, self._owner, o.epoch):
                    continue
                if await conn.execute(sql.FINISH_TASK, _lite_finish_params(o, self._owner)) == 0:
                    continue
                pending = int(await conn.fetch_val(sql.COUNT_OUTCOME, (_ACCEPTED, _RUNNING, o.query_id)) or 0)
                landed[(o.query_id, o.bank_code, o.epoch)] = pending
                progress = BankProgress(o.bank_code, o.state, o.reason, o.attempt_count, o.card_count, o.finish_time)
                await conn.notify(PROGRESS, Progress(o.query_id, progress, pending).encode())
            return landed

        landed = await self._db.write(run) if writes else {}
        return [landed.get((w.query_id, w.bank_code, w.epoch)) if isinstance(w, Outcome) else None for w in writes]


async def _fenced(conn: Conn, bank_code: str, owner: str, epoch: int) -> bool:
    """True while `owner` holds the bank's lane at `epoch`."""
    return await conn.fetch_one(sql.FENCE, (bank_code, owner, epoch)) is not None


def _lite_finish_params(o: Outcome, owner: str) -> tuple[Any, ...]:
    return (
        o.state.value,
        o.reason,
        o.attempt_count,
        o.card_count,
        to_micros(o.finish_time),
        o.answer.wrapped_key if o.answer else None,
        o.answer.ciphertext if o.answer else None,
        owner,
        o.epoch,
        o.query_id,
        o.bank_code,
        _PENDING,
    )


def _outcome_params(outcomes: list[Outcome], owner: str) -> tuple[Any, ...]:
    return (
        sorted({o.query_id for o in outcomes}),
        [o.query_id for o in outcomes],
        [o.bank_code for o in outcomes],
        [o.epoch for o in outcomes],
        [o.state.value for o in outcomes],
        [o.reason for o in outcomes],
        [o.attempt_count for o in outcomes],
        [o.card_count for o in outcomes],
        [to_micros(o.finish_time) for o in outcomes],
        [o.answer.wrapped_key if o.answer else None for o in outcomes],
        [o.answer.ciphertext if o.answer else None for o in outcomes],
        owner,
    )


def _failure_arrays(failures: list[Failure]) -> tuple[list[Any], ...]:
    return (
        [f.query_id for f in failures],
        [f.bank_code for f in failures],
        [f.epoch for f in failures],
        [f.reason for f in failures],
        [f.attempt_count for f in failures],
    )
