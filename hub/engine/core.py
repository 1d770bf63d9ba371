"""`QueryEngine`: a query's lifecycle (the package docstring tells it),
its commands and reads, and the wiring of the engine's parts."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from cardlookup.clock import Clock
from hub.core.config import HubConfig
from hub.core.domain import (
    BankProgress,
    BankState,
    NewQuery,
    QueryEvent,
    QueryRecord,
    QueryState,
    Report,
)
from hub.core.logging import get_logger
from hub.engine.batches import OutcomeWriter
from hub.engine.completion import Completion, ReadyListener, ReportOpener, ReportSealer
from hub.engine.lanes import LaneKeeper
from hub.engine.rounds import LaneLoop
from hub.engine.tasks import BankTasks, QueryWork
from hub.engine.watch import Watchers
from hub.fanout import Alarm, BankCallPolicy, Fanout
from hub.keys.crypto import HubKeys
from hub.reports.contexts import subject_context
from hub.reports.sealing import AnswerSealer
from hub.store.db import Database
from hub.store.erasure import USER_DELETED
from hub.store.health import StoreHealth
from hub.store.lanes import LaneStore, wall_us
from hub.store.queries import PROGRESS, WORK, Progress, QueryStore, Task

log = get_logger("hub.engine")

__all__ = ["QueryEngine", "ReadyListener", "ReportOpener", "ReportSealer", "default_replica_id"]


def default_replica_id() -> str:
    """Unique per process start: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class QueryEngine:
    """The engine's parts, each in its module of this package: the lanes
    this replica owns (`lanes`), the bank tasks running in them (`tasks`),
    their records handed to the group commit (`batches`), the report when a
    query's last bank is final (`completion`), WatchQuery (`watch`) and the
    lane loop (`rounds`). Its own state: its loops, background tasks, and
    the queries whose every bank it started at submit."""

    def __init__(
        self,
        config: HubConfig,
        db: Database,
        keys: HubKeys,
        clock: Clock,
        fanout: Fanout | None = None,
        run_fanout: bool = True,
        replica_id: str | None = None,
        wall: Callable[[], int] = wall_us,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` judges every product time rule (windows, expiries);
        `wall` (microseconds) the leases compared across hosts; `monotonic`
        a replica's own lease validity, and the breakers and session timers
        of the fan-out it makes (a `fanout` passed in has its own)."""
        self._config = config
        self._keys = keys
        self._clock = clock
        self._db = db
        self._store = QueryStore(db)
        self._lane_store = LaneStore(db)
        self.replica_id = replica_id or default_replica_id()
        """Who owns this process's lanes (a restart under the same id takes
        its own lanes back at once instead of waiting for them to expire)."""
        self._lease_s = config.timings.lease_duration.total_seconds()
        self._wall = wall
        self._monotonic = monotonic
        self._fanout = fanout
        self._policy = fanout.policy if fanout is not None else BankCallPolicy.from_timings(config.timings)
        """The numbers of every bank call (hub.fanout.policy), one per engine."""
        self._run_fanout = run_fanout
        self._alarm = Alarm()
        self._started = False
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._all_here: set[str] = set()
        """Queries whose every bank this replica started at submit."""
        self._background: set[asyncio.Task[None]] = set()
        # Store health and its probe (issue 21): an idle replica comes back too.
        self._store_health = StoreHealth(
            db,
            config.timings.store_probe_interval.total_seconds(),
            config.timings.database_command_timeout.total_seconds(),
        )
        self._sealer = AnswerSealer(db, keys)
        """Issue 17: seals each answer to its user on arrival, and READY's report."""
        self._writer = OutcomeWriter(
            db,
            self.replica_id,
            keys,
            self._sealer,
            clock,
            self._alarm,
            self._store_health,
            lambda: self._stopping,
            on_last=lambda query_id: self._completion.complete(query_id),
        )
        self._completion = Completion(
            lambda: self._config,
            keys,
            clock,
            wall,
            self._store,
            self._sealer,
            self._writer,
            self._spawn,
            self._lease_s,
        )
        self._tasks = BankTasks(keys, clock, self._alarm, self._writer, self._sealer, lambda: self._stopping)
        self._watch = Watchers(self._store, self._spawn)
        self.lanes = LaneKeeper(
            self._lane_store,
            self._store,
            self.replica_id,
            self._lease_s,
            db.shared,
            self._tasks.run,
            drain_s=self._policy.handover_wait,
            wall=wall,
            monotonic=monotonic,
        )
        self._tasks.may_call = self.lanes.may_call
        self._lane_loop = LaneLoop(
            self.lanes,
            self._store,
            self._completion,
            self._writer,
            clock,
            wall,
            self._alarm,
            config.timings.lease_duration,
            run_fanout,
            lambda: self._stopping,
            self._spawn,
        )

    # -- lifecycle -----------------------------------------------------------

    async def migrate(self) -> None:
        await self._store.migrate()
        await self._lane_store.migrate()
        await self._sealer.migrate()

    async def start(self) -> None:
        """Takes this replica's share of the bank lanes (on SQLite: every
        lane) and starts their pending tasks, builds reports left unbuilt,
        sends ready SMSs nobody sent, then keeps doing so in the lane loop."""
        await self.migrate()
        if self._run_fanout:
            if self._fanout is None:
                self._fanout = Fanout(self._config, policy=self._policy, now=self._monotonic)
            self._tasks.fanout = self._fanout
            await self._lane_store.ensure([b.code for b in self._config.banks])
            if self._db.shared:
                await self._db.listen(WORK, self._on_work)
        await self._db.listen(PROGRESS, self._on_progress)
        add_reconnect = getattr(self._db, "add_reconnect_listener", None)
        if add_reconnect is not None:
            add_reconnect(self._watch.resync)
            if self._run_fanout:
                add_reconnect(lambda: self._spawn(self._lane_loop.sweep()))
        self._started = True
        self._stopping = False
        self._loops = [asyncio.create_task(self._watch.run(), name="engine-progress")]
        resumed = await self._lane_loop.housekeeping(first=True)
        if resumed:
            log.info("engine_resumed", banks=resumed)
        self._loops.append(asyncio.create_task(self._lane_loop.run(), name="engine-lanes"))

    async def stop(self, grace: float = 5.0) -> None:
        """Stops new calls, lets in-flight bank calls finish and their
        outcomes commit for up to `grace` seconds in total, cancels the rest
        (those banks stay PENDING and are resumed by the next owner of their
        lane), and releases this replica's lanes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, grace)
        self._stopping = True
        self._alarm.wake_all()
        for loop_task in self._loops:  # no work of their own to finish
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        interrupted = await self.lanes.leave(grace) if self._run_fanout else 0
        background = list(self._background)
        if background:
            _, late_bg = await asyncio.wait(background, timeout=max(0.0, deadline - loop.time()))
            for task in late_bg:
                task.cancel()
            await asyncio.gather(*late_bg, return_exceptions=True)
        await self._writer.close()
        if self._fanout is not None:
            await self._fanout.close()
        await self._store_health.close()
        self._started = False
        log.info("engine_stopped", interrupted_banks=interrupted)

    def wake(self) -> None:
        """Ends every retry wait now, so each bank task re-checks its window
        and breaker (call after moving a manual clock)."""
        self._alarm.wake_all()

    def reconfigure(self, config: HubConfig) -> None:
        """A reloaded configuration (HubServer.reload): new queries are checked
        against its bank registry; bank tasks already running keep going. A
        bank added gets its lane row, claimed by the next lane round (one
        runs at once)."""
        self._config = config
        if self._run_fanout and self._started and not self._stopping:
            self._spawn(self._add_lanes([b.code for b in config.banks]))

    async def _add_lanes(self, codes: list[str]) -> None:
        try:
            await self._lane_store.ensure(codes)
            await self.lanes.round()
        except Exception:  # the lane loop's next round claims them
            log.warning("lanes_not_added", exc_info=True)

    def add_ready_listener(self, listener: ReadyListener) -> None:
        self._completion.listeners.append(listener)

    def set_report_sealer(self, sealer: ReportSealer) -> None:
        """Issue 12: READY reports are sealed by `sealer` (to the user's
        password-derived key) instead of the hub's envelope when it returns
        a sealed item; the hub then holds no key that opens them."""
        self._completion.report_sealer = sealer

    # -- commands ------------------------------------------------------------

    async def submit(self, new: NewQuery) -> QueryRecord:
        """Accepts `new` durably (idempotent on its query id) and starts the
        calls of the banks whose lane this replica owns; the owners of the
        others pick theirs up from the store's WORK notification. One store
        write and no read for a new query: the record returned is the one
        written."""
        _check_new_query(new, self._config)
        now = self._clock.now()
        due = now + self._config.timings.report_window
        plaintext = json.dumps({"n": new.subject.full_name, "i": new.subject.id_number}).encode()
        sealed = self._keys.envelope.seal(plaintext, subject_context(new.query_id))
        if not await self._store.insert(new, sealed, now, due):
            existing = await self._store.get(new.query_id)
            assert existing is not None
            return existing
        record = QueryRecord(
            query_id=new.query_id,
            user_id=new.user_id,
            state=QueryState.ACCEPTED,
            bank_codes=tuple(new.bank_codes),
            banks=tuple(BankProgress(code, BankState.PENDING) for code in new.bank_codes),
            create_time=now,
            report_due_time=due,
            consent_text_version=new.consent_text_version,
        )
        log.info("query_accepted", query_id=new.query_id, banks=len(new.bank_codes))
        if self._run_fanout and self._started and not self._stopping:
            work = QueryWork(now, due, new.consent_text_version, new.subject)
            started = 0
            for code in new.bank_codes:
                lane = self.lanes.open_lane(code)
                if lane is not None and new.query_id not in lane.tasks:
                    self._tasks.submitted(new.query_id, work)
                    self.lanes.start(lane, Task(new.query_id, code, 0, "", now, due, new.consent_text_version, None))
                    started += 1
            if started == len(new.bank_codes) and self._db.shared:
                self._all_here.add(new.query_id)  # its own WORK notice needs no pickup here
        return record

    async def sweep_expired(self) -> int:
        """R11: crypto-shreds every report past its expiry; returns how many."""
        expired = await self._store.expire_due(self._clock.now())
        for query_id in expired:
            log.info("report_expired", query_id=query_id)
        return len(expired)

    # -- queries -------------------------------------------------------------

    async def get(self, query_id: str) -> QueryRecord | None:
        return await self._store.get(query_id)

    async def list_for_user(
        self, user_id: str, limit: int, before: tuple[dt.datetime, str] | None = None
    ) -> list[QueryRecord]:
        return await self._store.list_for_user(user_id, limit, before)

    async def latest_ready_time(self, user_id: str) -> dt.datetime | None:
        return await self._store.latest_ready_time(user_id)

    async def unfinished_for_user(self, user_id: str) -> QueryRecord | None:
        return await self._store.unfinished_for_user(user_id)

    async def read_report(self, query_id: str, opener: ReportOpener | None = None) -> Report:
        """`opener` opens a report sealed to the user (it holds the key the
        payment password derived); without one only an envelope-sealed
        report opens."""
        return await self._completion.read_report(query_id, opener)

    def watch(self, query_id: str) -> AsyncIterator[QueryEvent]:
        """A snapshot, then one event per bank outcome becoming final, until
        READY (hub.engine.watch). Raises KeyError (on first iteration) for
        an unknown query, and later if the query is erased (issue 22)."""
        return self._watch.watch(query_id)

    # -- lanes ------------------------------------------------------------------

    def _on_work(self, query_id: str) -> None:
        if query_id in self._all_here:
            self._all_here.discard(query_id)
            return
        if self._started and not self._stopping:
            self.lanes.on_work(query_id)

    # -- store health ------------------------------------------------------------

    @property
    def store_healthy(self) -> bool:
        return self._store_health.healthy

    def add_store_health_listener(self, listener: Callable[[bool], None]) -> None:
        """Told False when the engine's store writes start failing, True when
        a write or the store probe succeeds again (hub.store.health; the hub
        turns its health status with it)."""
        self._store_health.add_listener(listener)

    def store_write_failed(self, error: str) -> None:
        """A store write outside the engine failed (an API write): unhealthy
        until a write or the store probe succeeds, as for the engine's own."""
        self._store_health.failed(error)

    # -- account closure (issue 22) ---------------------------------------------

    def end_query(self, query_id: str) -> None:
        """The query was erased with its user's account (hub.store.erasure,
        announced on PROGRESS to every replica): its bank calls here are
        cancelled now (the store has fenced its tasks, so an outcome that
        arrives anyway is discarded), and what this process held of it is
        dropped."""
        for task in self.lanes.running():
            if task.query_id == query_id and task.runner is not None and not task.runner.done():
                log.info("bank_call_ended", query_id=query_id, bank=task.bank_code, reason=USER_DELETED)
                task.runner.cancel()
        self._tasks.forget(query_id)
        self._watch.end(query_id)

    def _on_progress(self, payload: str) -> None:
        """A PROGRESS notification (any replica's outcome): for the watchers
        of this process; an erasure ends the query here."""
        progress = Progress.decode(payload)
        if progress.bank is not None and progress.bank.reason == USER_DELETED:
            self.end_query(progress.query_id)  # issue 22: the account was closed
            return
        self._watch.on_progress(progress)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _check_new_query(new: NewQuery, config: HubConfig) -> None:
    """The API validated the request; this guards the engine's own invariants."""
    if not new.query_id or not new.user_id:
        raise ValueError("query_id and user_id are required")
    if not new.bank_codes:
        raise ValueError("a query needs at least one bank")
    if len(set(new.bank_codes)) != len(new.bank_codes):
        raise ValueError("bank codes repeat")
    unknown = [c for c in new.bank_codes if config.bank(c) is None]
    if unknown:
        raise ValueError(f"unknown bank codes: {', '.join(unknown)}")
    if not new.subject.full_name or not new.subject.id_number:
        raise ValueError("the subject is incomplete")
