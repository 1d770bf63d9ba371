"""The lane loop: every third of a lease, a lane round (renew, claim, hand
over, pick up: hub.engine.lanes), then the reports a dead replica left
unbuilt and the ready SMSs nobody sent. A store failure in a round is
retried next round; meanwhile the replica reports its store unhealthy and,
past two thirds of a lease, stops calling (`LaneKeeper.expired`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

from cardlookup.clock import Clock
from hub.core.logging import get_logger
from hub.engine.batches import OutcomeWriter
from hub.engine.completion import Completion
from hub.engine.lanes import LaneKeeper
from hub.fanout import Alarm
from hub.store.queries import QueryStore

log = get_logger("hub.engine")


class LaneLoop:
    def __init__(
        self,
        lanes: LaneKeeper,
        store: QueryStore,
        completion: Completion,
        writer: OutcomeWriter,
        clock: Clock,
        wall: Callable[[], int],
        alarm: Alarm,
        lease: dt.timedelta,
        run_fanout: bool,
        stopping: Callable[[], bool],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._lanes = lanes
        self._store = store
        self._completion = completion
        self._writer = writer
        self._clock = clock
        self._wall = wall
        self._alarm = alarm
        self._lease = lease
        self._run_fanout = run_fanout
        self._stopping = stopping
        self._spawn = spawn
        self.rounds = 0
        """Rounds run so far (tests wait for rounds, not for time)."""

    async def run(self) -> None:
        failed = False
        while not self._stopping():
            await self._alarm.sleep(self._lease.total_seconds() / 3)
            if self._stopping():
                return
            try:
                await self.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error("lane_loop_failed", exc_info=True)
                self._writer.set_healthy(False, type(error).__name__)
                self._lanes.expired()
                failed = True
            else:
                if failed:  # the store took this round's writes: healthy again (issue 19)
                    self._writer.set_healthy(True)
                    failed = False

    async def housekeeping(self, first: bool = False) -> int:
        """One round; returns the bank tasks it started."""
        started = 0
        if self._run_fanout:
            # Every third round also sweeps every lane (a task whose runner
            # ended on an error, a WORK notification missed).
            self.rounds += 1
            started = await self._lanes.round(first=first, sweep=self.rounds % 3 == 0)
            quiet_since = self._clock.now() - self._lease
            for query_id in await self._store.orphaned_ids(self._clock.now() if first else quiet_since):
                await self._completion.complete(query_id)
        for query_id in await self._store.ready_unnotified_ids(self._wall()):
            self._spawn(self._completion.notify(query_id))
        return started

    async def sweep(self) -> None:
        """Notifications may have been missed: every lane's pending tasks."""
        try:
            await self._lanes.pickup(list(self._lanes.lanes))
        except Exception:
            log.warning("pickup_failed", exc_info=True)
