"""The bank lanes this replica owns, and the bank tasks running in them
(issue 16).

A replica calls a bank only while it owns the bank's lane
(hub.store.lanes). Every third of a lease, `round` renews every lane this
replica holds (one statement), claims free lanes up to its fair share,
picks up the pending tasks of lanes it just won (one statement for all of
them), and hands surplus lanes over at a clean point: no new call starts
in that lane, the calls in flight end (or reach their deadline) and their
outcomes commit, and only then is the lane released, so that no bank gets
calls from two replicas at once. New queries reach the lane owners on the
store's WORK channel; `on_work` gathers the ids that arrive together and
picks their tasks up in one statement.

A lane whose renewal did not succeed for two thirds of a lease (the store
is unreachable) stops calling on a shared store: another replica may claim
it once its lease runs out, and the epoch fences any late write.

Each bank task has one state object (`hub.engine.tasks.BankTask`) held
by its lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from hub.core.logging import get_logger
from hub.engine.tasks import WAITING, WRITING, BankTask
from hub.store.lanes import LaneRound, LaneStore, wall_us
from hub.store.queries import QueryStore, Task

log = get_logger("hub.lanes")


@dataclass(eq=False)
class Lane:
    bank_code: str
    epoch: int
    draining: bool = False
    """Being handed over: no new call starts."""
    tasks: dict[str, BankTask] = field(default_factory=dict)
    """By query id."""


RunTask = Callable[[BankTask, Task], Coroutine[Any, Any, None]]


class LaneKeeper:
    def __init__(
        self,
        lanes: LaneStore,
        queries: QueryStore,
        owner: str,
        lease_s: float,
        shared: bool,
        run_task: RunTask,
        drain_s: float,
        wall: Callable[[], int] = wall_us,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = lanes
        self._queries = queries
        self._owner = owner
        self._lease_s = lease_s
        self._shared = shared
        self._run_task = run_task
        self._drain_s = drain_s
        self._wall = wall
        self._monotonic = monotonic
        self.lanes: dict[str, Lane] = {}
        self._valid_until = float("inf")
        self._work: set[str] = set()
        self._work_task: asyncio.Task[None] | None = None
        self._pickups = 0
        self._ended: set[tuple[str, str]] = set()
        """Tasks that ended while a pickup was reading (it may have read them
        still PENDING: they must not start again)."""
        self._handovers: set[asyncio.Task[None]] = set()
        self.last_round: LaneRound | None = None
        self._round_lock = asyncio.Lock()
        """Rounds run one at a time (a reload's round and the loop's): an
        older round's result must not undo a newer one's."""

    # -- asking ------------------------------------------------------------------

    def open_lane(self, bank_code: str) -> Lane | None:
        """The lane of `bank_code` if this replica may start calls in it."""
        lane = self.lanes.get(bank_code)
        if lane is None or lane.draining or not self.valid():
            return None
        return lane

    def valid(self) -> bool:
        return not self._shared or self._monotonic() < self._valid_until

    def may_call(self, task: BankTask) -> bool:
        lane = self.lanes.get(task.bank_code)
        return lane is not None and lane.epoch == task.epoch and not lane.draining and self.valid()

    def running(self) -> list[BankTask]:
        return [t for lane in list(self.lanes.values()) for t in list(lane.tasks.values())]

    # -- tasks -------------------------------------------------------------------

    def start(self, lane: Lane, row: Task) -> None:
        """Runs the task `row` in `lane` unless it runs here already."""
        key = (row.query_id, row.bank_code)
        if row.query_id in lane.tasks or (self._pickups and key in self._ended):
            return
        task = BankTask(row.query_id, row.bank_code, lane.epoch, row.attempt_count, row.last_error)
        task.runner = asyncio.create_task(self._run_task(task, row), name=f"bank:{key[1]}:{key[0]}")
        lane.tasks[row.query_id] = task

        def ended(_runner: asyncio.Task[None]) -> None:
            if lane.tasks.get(task.query_id) is task:
                del lane.tasks[task.query_id]
            if self._pickups:
                self._ended.add(key)

        task.runner.add_done_callback(ended)

    async def pickup(self, bank_codes: list[str], query_ids: list[str] | None = None) -> int:
        """Starts the PENDING tasks of these lanes (of these queries only, if
        given) that do not run here yet: one statement."""
        codes = [c for c in bank_codes if self.open_lane(c) is not None]
        if not codes:
            return 0
        self._pickups += 1
        try:
            rows = await self._queries.pending_tasks(codes, query_ids)
            started = 0
            for row in rows:
                lane = self.open_lane(row.bank_code)
                if lane is not None and row.query_id not in lane.tasks:
                    self.start(lane, row)
                    started += 1
            return started
        finally:
            self._pickups -= 1
            if not self._pickups:
                self._ended.clear()

    def on_work(self, query_id: str) -> None:
        """A WORK notification: the query's tasks of our lanes are picked up
        together with those of the other queries that arrive meanwhile."""
        self._work.add(query_id)
        if self._work_task is None or self._work_task.done():
            self._work_task = asyncio.get_running_loop().create_task(self._pickup_work())

    async def _pickup_work(self) -> None:
        while self._work:
            await asyncio.sleep(0)  # the notifications already received join this pickup
            ids, self._work = sorted(self._work), set()
            try:
                await self.pickup(list(self.lanes), ids)
            except Exception:  # the store is down: the next round's sweep finds them
                log.warning("pickup_failed", exc_info=True)

    # -- rounds ------------------------------------------------------------------

    async def round(self, first: bool = False, sweep: bool = False) -> int:
        """One lane round (see the module). Returns the tasks started."""
        async with self._round_lock:
            return await self._round(first, sweep)

    async def _round(self, first: bool, sweep: bool) -> int:
        started_at = self._monotonic()
        now = self._wall()
        result = await self._store.round(self._owner, now, now + int(self._lease_s * 1e6), take_all=not self._shared)
        self.last_round = result
        # Two thirds of a lease from the start of the round: the rest is the
        # margin for clock skew between replicas.
        self._valid_until = started_at + self._lease_s * 2 / 3
        for code, lane in list(self.lanes.items()):
            if result.held.get(code) != lane.epoch:
                self.drop(lane, "lane_lost")
        won = [code for code in result.held if code not in self.lanes]
        for code in won:
            self.lanes[code] = Lane(code, result.held[code])
        if won:
            log.info("lanes_won", banks=len(won), held=len(result.held), share=result.share, live=result.live)
        started = await self.pickup(list(self.lanes) if sweep else won)
        if self._shared:
            self._hand_over_surplus(result.share)
        return started

    def expired(self) -> None:
        """A round failed: past two thirds of a lease, stop every call."""
        if self._shared and self._monotonic() >= self._valid_until:
            for lane in list(self.lanes.values()):
                self.drop(lane, "lane_expired")

    def drop(self, lane: Lane, why: str) -> None:
        """The lane is no longer ours: calls in it end now (a task writing its
        outcome finishes its write, which the epoch fences if need be)."""
        log.warning(why, bank=lane.bank_code, epoch=lane.epoch, tasks=len(lane.tasks))
        if self.lanes.get(lane.bank_code) is lane:
            del self.lanes[lane.bank_code]
        for task in list(lane.tasks.values()):
            if task.phase != WRITING and task.runner is not None:
                task.runner.cancel()

    def _hand_over_surplus(self, share: int) -> None:
        open_lanes = [lane for lane in self.lanes.values() if not lane.draining]
        surplus = len(open_lanes) - share
        if surplus <= 0:
            return
        # The quietest lanes go: the fewest calls to wait for.
        for lane in sorted(open_lanes, key=lambda lane: (len(lane.tasks), lane.bank_code))[:surplus]:
            lane.draining = True
            handover = asyncio.get_running_loop().create_task(self._hand_over(lane))
            self._handovers.add(handover)
            handover.add_done_callback(self._handovers.discard)

    async def _hand_over(self, lane: Lane) -> None:
        """Stops new calls, lets the calls in flight end and their outcomes
        commit (up to a call's deadline and a margin), then releases."""
        for task in list(lane.tasks.values()):
            if task.phase == WAITING and task.runner is not None:
                task.runner.cancel()
        runners = [t.runner for t in lane.tasks.values() if t.runner is not None]
        if runners:
            _, late = await asyncio.wait(runners, timeout=self._drain_s)
            for runner in late:
                runner.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.lanes.get(lane.bank_code) is not lane:
            return  # lost meanwhile
        try:
            await self._store.release(self._owner, lane.bank_code, lane.epoch)
        except Exception:  # it expires instead; we stopped calling it anyway
            log.warning("lane_release_failed", exc_info=True, bank=lane.bank_code)
        if self.lanes.get(lane.bank_code) is lane:
            del self.lanes[lane.bank_code]
        log.info("lane_handed_over", bank=lane.bank_code, epoch=lane.epoch)

    async def leave(self, grace: float) -> int:
        """Stops within `grace` s (plus at most 0.2 s for the release): waits
        for the tasks, cancels the rest, releases every lane. Returns the
        tasks interrupted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, grace)
        for handover in list(self._handovers):
            handover.cancel()
        if self._work_task is not None:
            self._work_task.cancel()
        runners = [t.runner for t in self.running() if t.runner is not None]
        interrupted = 0
        if runners:
            _, late = await asyncio.wait(runners, timeout=max(0.0, grace - 0.2))
            for runner in late:
                runner.cancel()
            interrupted = len(late)
            await asyncio.gather(*late, return_exceptions=True)
        self.lanes.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._store.leave(self._owner), timeout=max(0.2, deadline - loop.time()))
        return interrupted
