"""The query engine: the lifecycle of an accepted query.

    ACCEPTED --first bank final--> RUNNING --every bank final--> READY --R11--> EXPIRED

A query is durable before any bank is called (`submit` commits the query
and one PENDING task per bank). Then one asyncio task per chosen bank runs
the fan-out retry loop (hub.fanout); when a bank's outcome is final it is
written atomically with the bank's sealed, validated answer. When the last
bank is final, the report is built, sealed (to the owner's payment-password
key through the API's report sealer, issue 12; else under its own data key),
stored, and the subject and per-bank answers are deleted. On start the engine
resumes every unfinished query; bank calls are idempotent on the query id,
and an answer is only ever stored once per bank, so a crash can neither lose
nor duplicate cards.

Several replicas (issues 8 and 16) run this engine on one PostgreSQL
database. Each bank has one owner, the replica holding its bank lane
(hub.lane_keeper, hub.store.lanes): it makes every call to that bank, for
every query, so the bank's concurrency cap and breaker are its own, in
memory. Outcomes (and failure records) of all of a replica's lanes are
committed together by its group commit (hub.store.batches), fenced by the
lane epoch; the query's pending count moves in the same transaction, and
the replica that brings it to zero builds the report. New queries reach
the lane owners on the store's WORK channel. Every replica's lane loop
also builds reports a dead replica left unbuilt and sends ready SMSs
nobody sent. WatchQuery follows progress from the store's PROGRESS
notifications, so it works on any replica whichever replica does the
work. On SQLite the same code runs in one process, which owns every lane.

The engine never holds plaintext personal data at rest: the subject is
sealed in the store and only opened in memory to build bank requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import Clock
from hub import tracing
from hub.config import HubConfig
from hub.crypto import HubKeys, Sealed
from hub.domain import (
    BankProgress,
    BankState,
    NewQuery,
    QueryEvent,
    QueryRecord,
    QueryState,
    Report,
    ReportUnavailable,
    Subject,
)
from hub.fanout import Alarm, Fanout, FinalOutcome, TaskContext, run_bank_task
from hub.lane_keeper import CALLING, WAITING, WRITING, BankTask, LaneKeeper
from hub.logging import get_logger
from hub.report import BankOutcome, build_report, decode_answer, decode_report, encode_answer, encode_report
from hub.sealing import AnswerSealer
from hub.store.batches import Failure, GroupCommit, Outcome
from hub.store.db import Database
from hub.store.erasure import USER_DELETED
from hub.store.health import StoreHealth
from hub.store.lanes import LaneStore, wall_us
from hub.store.queries import PROGRESS, WORK, Progress, QueryStore, Task
from hub.user_sealing import is_user_sealed
from hub.validation import BankAnswer

ReadyListener = Callable[[QueryRecord], Awaitable[None]]
ReportSealer = Callable[[str, bytes, bytes], Awaitable[Sealed | None]]
"""(user id, encoded report, associated data) -> the report sealed to the
user (hub.identity.report_keys), or None to keep the hub's envelope."""
ReportOpener = Callable[[Sealed, bytes], bytes]
_FINAL_QUERY_STATES = (QueryState.READY, QueryState.EXPIRED)
_STORE_RETRY_FIRST = 0.05
_STORE_RETRY_MAX = 2.0
"""Seconds between retries of a failing store write (doubling from FIRST)."""
T = TypeVar("T")
log = get_logger("hub.engine")


def default_replica_id() -> str:
    """Unique per process start: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _subject_context(query_id: str) -> bytes:
    return b"subject:" + query_id.encode()


def _answer_context(query_id: str, bank_code: str) -> bytes:
    return f"answer:{query_id}:{bank_code}".encode()


def _report_context(query_id: str) -> bytes:
    return b"report:" + query_id.encode()


@dataclasses.dataclass(eq=False)
class _QueryWork:
    """What the bank tasks of one query running here need of it."""

    create_time: dt.datetime
    due: dt.datetime
    consent_text_version: str
    subject: Subject | None
    sealed_subject: Sealed | None = None
    open: int = 0
    """Its bank tasks running here."""


class QueryEngine:
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
        self._batch = GroupCommit(db, self.replica_id)
        self.lanes = LaneKeeper(
            self._lane_store,
            self._store,
            self.replica_id,
            self._lease_s,
            db.shared,
            self._run_bank,
            drain_s=config.timings.attempt_timeout.total_seconds() + 1,
            wall=wall,
            monotonic=monotonic,
        )
        self._fanout = fanout
        self._run_fanout = run_fanout
        self._alarm = Alarm()
        self._started = False
        self._stopping = False
        self._rounds = 0
        self._loops: list[asyncio.Task[None]] = []
        self._all_here: set[str] = set()
        """Queries whose every bank this replica started at submit."""
        self._queries: dict[str, _QueryWork] = {}
        """What the bank tasks running here need of their query (the request
        needs its times and subject); dropped when its last task here ends."""
        self._progress: asyncio.Queue[Progress] = asyncio.Queue()
        # Store health and its probe (issue 21): an idle replica comes back too.
        self._store_health = StoreHealth(
            db,
            config.timings.store_probe_interval.total_seconds(),
            config.timings.database_command_timeout.total_seconds(),
        )
        self._held: dict[str, Progress] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._watchers: dict[str, set[asyncio.Queue[QueryEvent | None]]] = {}
        """None in a queue: the query was erased (issue 22)."""
        # The latest record of each watched query, patched per bank outcome:
        # re-reading all n bank rows per outcome would make a query O(n^2).
        self._snapshots: dict[str, QueryRecord] = {}
        self._listeners: list[ReadyListener] = []
        self._report_sealer: ReportSealer | None = None
        self._sealer = AnswerSealer(db, keys)
        """Issue 17: seals each answer to its user on arrival, and READY's report."""

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
                self._fanout = Fanout(self._config)
            await self._lane_store.ensure([b.code for b in self._config.banks])
            if self._db.shared:
                await self._db.listen(WORK, self._on_work)
        await self._db.listen(PROGRESS, self._on_progress)
        add_reconnect = getattr(self._db, "add_reconnect_listener", None)
        if add_reconnect is not None:
            add_reconnect(self._resync_watchers)
            if self._run_fanout:
                add_reconnect(lambda: self._spawn(self._sweep()))
        self._started = True
        self._stopping = False
        self._loops = [asyncio.create_task(self._progress_loop(), name="engine-progress")]
        resumed = await self._housekeeping(first=True)
        if resumed:
            log.info("engine_resumed", banks=resumed)
        self._loops.append(asyncio.create_task(self._lane_loop(), name="engine-lanes"))

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
        await self._batch.close()
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
        self._listeners.append(listener)

    def set_report_sealer(self, sealer: ReportSealer) -> None:
        """Issue 12: READY reports are sealed by `sealer` (to the user's
        password-derived key) instead of the hub's envelope when it returns
        a sealed item; the hub then holds no key that opens them."""
        self._report_sealer = sealer

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
        sealed = self._keys.envelope.seal(plaintext, _subject_context(new.query_id))
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
            work = _QueryWork(now, due, new.consent_text_version, new.subject)
            started = 0
            for code in new.bank_codes:
                lane = self.lanes.open_lane(code)
                if lane is not None and new.query_id not in lane.tasks:
                    self._queries.setdefault(new.query_id, work)
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
        record = await self._store.get(query_id)
        if record is None:
            raise KeyError(query_id)
        if record.state == QueryState.READY and record.report_expire_time is not None:
            if record.report_expire_time <= self._clock.now():
                # Past R11 even if the sweeper has not run yet.
                raise ReportUnavailable(QueryState.EXPIRED, record.report_expire_time)
            sealed = await self._store.report(query_id)
            if sealed is not None:
                if is_user_sealed(sealed):
                    if opener is None:
                        raise ValueError("the report is sealed to its user: an opener is needed")
                    return decode_report(opener(sealed, _report_context(query_id)))
                return decode_report(self._keys.envelope.open(sealed, _report_context(query_id)))
        raise ReportUnavailable(record.state, record.report_expire_time)

    async def watch(self, query_id: str) -> AsyncIterator[QueryEvent]:
        """A snapshot, then one event per bank outcome becoming final, until
        READY. Raises KeyError (on first iteration) for an unknown query,
        and later if the query is erased (issue 22)."""
        queue: asyncio.Queue[QueryEvent | None] = asyncio.Queue()
        self._watchers.setdefault(query_id, set()).add(queue)
        try:
            record = await self._store.get(query_id)
            if record is None:
                raise KeyError(query_id)
            if record.state not in _FINAL_QUERY_STATES:
                # The record later outcomes patch (it holds every outcome
                # committed before it; later ones come as notifications).
                # Without it the first outcome re-reads the query, and with
                # a group commit that read often finds it READY already,
                # folding every bank's change into one whole-record event.
                self._snapshots.setdefault(query_id, record)
            yield QueryEvent(record, None)
            if record.state in _FINAL_QUERY_STATES:
                return
            seen = {b.bank_code for b in record.banks if b.state != BankState.PENDING}
            while True:
                event = await queue.get()
                if event is None:  # issue 22: erased with its user's account
                    raise KeyError(query_id)
                if event.changed_bank_code in seen:
                    if event.query.state not in _FINAL_QUERY_STATES:
                        continue  # already in the snapshot
                    # The final record still comes, but names no bank this
                    # watcher has already seen change.
                    event = QueryEvent(event.query, None)
                if event.changed_bank_code is not None:
                    seen.add(event.changed_bank_code)
                yield event
                if event.query.state in _FINAL_QUERY_STATES:
                    return
        finally:
            queues = self._watchers.get(query_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._watchers[query_id]
                    self._snapshots.pop(query_id, None)
                    self._held.pop(query_id, None)  # issue 17: the last watcher left

    # -- lanes ------------------------------------------------------------------

    async def _lane_loop(self) -> None:
        """Every third of a lease: a lane round (renew, claim, hand over,
        pick up), finish orphaned queries, send unsent ready SMSs. A store
        failure here is retried next round."""
        failed = False
        while not self._stopping:
            await self._alarm.sleep(self._lease_s / 3)
            if self._stopping:
                return
            try:
                await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error("lane_loop_failed", exc_info=True)
                self._set_store_healthy(False, type(error).__name__)
                self.lanes.expired()
                failed = True
            else:
                if failed:  # the store took this round's writes: healthy again (issue 19)
                    self._set_store_healthy(True)
                    failed = False

    async def _housekeeping(self, first: bool = False) -> int:
        started = 0
        if self._run_fanout:
            # Every third round also sweeps every lane (a task whose runner
            # ended on an error, a WORK notification missed).
            self._rounds += 1
            started = await self.lanes.round(first=first, sweep=self._rounds % 3 == 0)
            quiet_since = self._clock.now() - self._config.timings.lease_duration
            for query_id in await self._store.orphaned_ids(self._clock.now() if first else quiet_since):
                await self._complete(query_id)
        for query_id in await self._store.ready_unnotified_ids(self._wall()):
            self._spawn(self._notify(query_id))
        return started

    async def _sweep(self) -> None:
        """Notifications may have been missed: every lane's pending tasks."""
        try:
            await self.lanes.pickup(list(self.lanes.lanes))
        except Exception:
            log.warning("pickup_failed", exc_info=True)

    def _on_work(self, query_id: str) -> None:
        if query_id in self._all_here:
            self._all_here.discard(query_id)
            return
        if self._started and not self._stopping:
            self.lanes.on_work(query_id)

    # -- the fan-out ---------------------------------------------------------

    def _work_of(self, row: Task) -> _QueryWork:
        work = self._queries.get(row.query_id)
        if work is None:
            work = _QueryWork(row.create_time, row.due, row.consent_text_version, None, row.subject)
            self._queries[row.query_id] = work
        return work

    def _subject(self, query_id: str, work: _QueryWork) -> Subject | None:
        if work.subject is None and work.sealed_subject is not None:
            data = json.loads(self._keys.envelope.open(work.sealed_subject, _subject_context(query_id)))
            work.subject = Subject(full_name=data["n"], id_number=data["i"])
        return work.subject

    def _request(self, query_id: str, work: _QueryWork, bank_code: str, subject: Subject) -> bank_pb.ListCardsRequest:
        return self._keys.consent_signer.list_cards_request(
            query_id=query_id,
            bank_code=bank_code,
            full_name=subject.full_name,
            id_number=subject.id_number,
            issue_time=work.create_time,
            expire_time=work.due,
            consent_text_version=work.consent_text_version,
        )

    async def _run_bank(self, task: BankTask, row: Task) -> None:
        query_id, bank_code = task.query_id, task.bank_code
        assert self._fanout is not None
        work = self._work_of(row)
        work.open += 1
        try:
            subject = self._subject(query_id, work)
            if subject is None:
                log.error("subject_missing", query_id=query_id, bank=bank_code)
                outcome: FinalOutcome | None = FinalOutcome(
                    BankState.NOT_ANSWERED, "SUBJECT_UNAVAILABLE", task.attempt_count
                )
            else:
                request = self._request(query_id, work, bank_code, subject)

                async def begin() -> int | None:
                    if not self.lanes.may_call(task):
                        return None
                    # Issue 21: a call counts once it is sent (right after
                    # this); its record is committed with the next batch,
                    # without holding the call up.
                    task.attempt_count += 1
                    self._batch.post(Failure(query_id, bank_code, task.epoch, None, task.attempt_count))
                    return task.attempt_count

                async def on_failure(count: int, reason: str) -> None:
                    log.info("bank_attempt_failed", query_id=query_id, bank=bank_code, attempt=count, reason=reason)
                    task.last_error = reason
                    await self._stored(lambda: self._batch.add(Failure(query_id, bank_code, task.epoch, reason, count)))

                def in_call(calling: bool) -> None:
                    task.phase = CALLING if calling else WAITING

                ctx = TaskContext(
                    query_id=query_id,
                    due=work.due,
                    clock=self._clock,
                    alarm=self._alarm,
                    stopping=lambda: self._stopping,
                    begin_attempt=begin,
                    on_failure=on_failure,
                    in_call=in_call,
                )
                lane = self._fanout.lane(bank_code)
                outcome = await run_bank_task(self._fanout, lane, request, task.attempt_count, ctx, task.last_error)
            if outcome is not None:
                task.phase = WRITING
                await self._finish(query_id, bank_code, outcome, task.epoch)
        except asyncio.CancelledError:
            if self._stopping:
                raise
            # The lane was lost or handed over: its next owner calls the bank.
        except Exception:
            # A bug or a store failure: the task stays PENDING and a later
            # sweep of the lane starts it again.
            log.error("bank_task_failed", exc_info=True, query_id=query_id, bank=bank_code)
        finally:
            work.open -= 1
            if work.open <= 0:
                # Issue 17: the last of this replica's calls for the query
                # ended: its subject (name + ID number) leaves memory here,
                # whichever replica completes the query.
                self._queries.pop(query_id, None)
                self._sealer.forget(query_id)

    async def _seal_answer(self, query_id: str, bank_code: str, answer: BankAnswer) -> Sealed:
        """A validated answer, sealed for storage before it enters a batch
        (outside the store's transaction): to the user (hub.sealing, issue
        17); the envelope only for a user who has no key at all."""
        sealed = await self._sealer.seal_answer(query_id, answer)
        if sealed is None:
            sealed = self._keys.envelope.seal(encode_answer(answer), _answer_context(query_id, bank_code))
        return sealed

    async def _finish(self, query_id: str, bank_code: str, outcome: FinalOutcome, epoch: int) -> None:
        sealed = None
        card_count = 0
        answer = outcome.answer
        if answer is not None:
            card_count = len(answer.cards)
            # The key is read from the store: retried like the write (issue 9).
            sealed = await self._stored(lambda: self._seal_answer(query_id, bank_code, answer))
            if sealed is None:
                return  # stopping: the bank stays PENDING for the next owner
        write = Outcome(
            query_id,
            bank_code,
            epoch,
            outcome.state,
            outcome.reason,
            outcome.attempt_count,
            card_count,
            sealed,
            self._clock.now(),
        )
        # Stored only once its batch commits; retried while the store fails.
        pending = await self._stored(lambda: self._batch.add(write))
        if pending is None:
            if not self._stopping:
                log.warning("outcome_fenced", query_id=query_id, bank=bank_code)
            return
        # DEBUG: one line per bank outcome was a measurable share of the hub's
        # CPU at 1,000 banks (issue 10); `query_ready` is the INFO line.
        log.debug(
            "bank_final",
            query_id=query_id,
            bank=bank_code,
            state=outcome.state.value,
            reason=outcome.reason,
            attempts=outcome.attempt_count,
            cards=card_count,
        )
        if pending == 0:
            await self._complete(query_id)

    @tracing.traced_query("query.ready")
    async def _complete(self, query_id: str) -> None:
        rows = await self._store.answers(query_id)
        now = self._clock.now()
        expire = now + self._config.timings.report_retention
        sealed_report = await self._sealer.seal_report(query_id, rows, now, expire)
        if sealed_report is not None:
            card_count = sum(p.card_count for p, _ in rows)
        else:
            sealed_report, card_count = await self._legacy_report(query_id, rows, now, expire)
        completed = await self._stored(lambda: self._store.complete(query_id, sealed_report, now, expire))
        if completed:
            log.info("query_ready", query_id=query_id, cards=card_count, banks=len(rows))
            self._spawn(self._notify(query_id))

    async def _legacy_report(
        self, query_id: str, rows: list[tuple[BankProgress, Sealed | None]], now: dt.datetime, expire: dt.datetime
    ) -> tuple[Sealed, int]:
        """A user without any key (enrolled before issue 12): the report is
        built here and sealed by the API's sealer or the envelope."""
        outcomes = []
        for progress, sealed in rows:
            answer = None
            if sealed is not None:
                plaintext = self._keys.envelope.open(sealed, _answer_context(query_id, progress.bank_code))
                answer = decode_answer(progress.bank_code, plaintext)
            outcomes.append(BankOutcome(progress, answer))
        report = build_report(query_id, now, expire, outcomes)
        return await self._seal_report(query_id, encode_report(report)), len(report.cards)

    # -- store failures ------------------------------------------------------------

    async def _stored(self, write: Callable[[], Awaitable[T]]) -> T | None:
        """Runs a store write of the fan-out until it succeeds: a full disk or
        a database refusing writes must not lose a bank's answer, which is
        kept in memory meanwhile (issue 9). While writes fail the engine
        reports the store unhealthy (the hub's health says NOT_SERVING).
        Returns None, leaving the bank PENDING for the next start, only if
        the hub stops first."""
        delay = _STORE_RETRY_FIRST
        while True:
            try:
                result = await write()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._set_store_healthy(False, type(error).__name__)
                if self._stopping:
                    return None
                await self._alarm.sleep(delay)
                delay = min(delay * 2, _STORE_RETRY_MAX)
                continue
            self._set_store_healthy(True)
            return result

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

    def _set_store_healthy(self, healthy: bool, error: str = "") -> None:
        if healthy:
            self._store_health.succeeded()
        else:
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
        self._queries.pop(query_id, None)
        self._sealer.forget(query_id)
        self._held.pop(query_id, None)
        self._snapshots.pop(query_id, None)
        for queue in list(self._watchers.get(query_id, ())):
            queue.put_nowait(None)  # its watches end

    # -- progress (WatchQuery) -------------------------------------------------

    def _on_progress(self, payload: str) -> None:
        """A PROGRESS notification (any replica's outcome): queued for the
        watchers of this process, if the query has any."""
        progress = Progress.decode(payload)
        if progress.bank is not None and progress.bank.reason == USER_DELETED:
            self.end_query(progress.query_id)  # issue 22: the account was closed
            return
        if progress.query_id in self._watchers:
            self._progress.put_nowait(progress)

    async def _progress_loop(self) -> None:
        """Publishes progress to watchers in notification order. The last
        bank's outcome is held until READY so that watchers see it once,
        with the READY record (ready and expiry times come from the store)."""
        while True:
            progress = await self._progress.get()
            try:
                if progress.bank is None:
                    held = self._held.pop(progress.query_id, None)
                    await self._publish_record(progress.query_id, held.bank.bank_code if held and held.bank else None)
                elif progress.pending == 0:
                    self._held[progress.query_id] = progress
                else:
                    await self._publish(progress.query_id, progress.bank, QueryState.RUNNING)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("watch_publish_failed", exc_info=True, query_id=progress.query_id)

    def _resync_watchers(self) -> None:
        """Progress notifications were missed (the store's listening
        connection was lost): every watched query gets a fresh record."""
        for query_id in list(self._watchers):
            self._snapshots.pop(query_id, None)
            self._held.pop(query_id, None)
            self._spawn(self._publish_record(query_id, None))

    async def _publish_record(self, query_id: str, bank_code: str | None) -> None:
        self._snapshots.pop(query_id, None)
        record = await self._store.get(query_id)
        if record is None:
            return
        event = QueryEvent(record, bank_code)
        for queue in list(self._watchers.get(query_id, ())):
            queue.put_nowait(event)

    async def _seal_report(self, query_id: str, plaintext: bytes) -> Sealed:
        """Sealed to the user when the sealer can (the hub-sealed answers are
        deleted with the same commit, so no hub-readable copy remains);
        else under the hub's envelope."""
        if self._report_sealer is not None:
            record = await self._store.get(query_id)
            if record is not None:
                sealed = await self._report_sealer(record.user_id, plaintext, _report_context(query_id))
                if sealed is not None:
                    return sealed
        return self._keys.envelope.seal(plaintext, _report_context(query_id))

    async def _publish(self, query_id: str, progress: BankProgress, state: QueryState) -> None:
        """Tells the query's watchers that `progress` is final. Patches the
        cached record instead of re-reading the query, so publishing costs
        O(1) per bank outcome; patches are monotonic (a final bank never goes
        back to PENDING, a query never goes back in state), so the order in
        which concurrent outcomes are published cannot corrupt the record."""
        queues = self._watchers.get(query_id)
        if not queues:
            return
        record = self._snapshots.get(query_id)
        if record is None:
            record = await self._store.get(query_id)
            if record is None:
                return
        record = _patched(record, progress, state)
        if record.state in _FINAL_QUERY_STATES:
            # The store is ahead of the notifications: the query became READY
            # while this outcome waited in the queue (a fast fan-out). The
            # record holds every outcome, not just this one: publish it as a
            # whole snapshot (no changed bank), so that the API converts and
            # sends it whole, not as one changed outcome.
            event = QueryEvent(record, None)
        else:
            self._snapshots[query_id] = record
            event = QueryEvent(record, progress.bank_code)
        for queue in list(self._watchers.get(query_id, ())):
            queue.put_nowait(event)

    async def _notify(self, query_id: str) -> None:
        """Runs the ready listeners (the SMS, R9) once per query across
        replicas: only the replica that claims the notice sends it."""
        now = self._wall()
        # Not one bank lease: a send can outlast a short lease (a slow
        # gateway, or the outbox write queued behind argon2 hashes), and
        # another replica claiming it meanwhile would send it again.
        claim_s = max(self._lease_s, self._config.timings.notice_claim.total_seconds())
        if not await self._store.claim_notice(query_id, now, now + int(claim_s * 1e6)):
            return
        record = await self._store.get(query_id)
        if record is None or record.state != QueryState.READY:
            return
        for listener in list(self._listeners):
            try:
                await listener(record)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("ready_listener_failed", exc_info=True, query_id=query_id)
                await self._store.release_notice(query_id)  # retried by the next lease round
                return
        await self._store.mark_notified(query_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


_STATE_ORDER = {QueryState.ACCEPTED: 0, QueryState.RUNNING: 1, QueryState.READY: 2, QueryState.EXPIRED: 3}


def _patched(record: QueryRecord, progress: BankProgress, state: QueryState) -> QueryRecord:
    """`record` with one bank's final outcome and the query state it implies."""
    banks = tuple(
        progress if b.bank_code == progress.bank_code and b.state == BankState.PENDING else b for b in record.banks
    )
    if _STATE_ORDER[state] <= _STATE_ORDER[record.state] or state in _FINAL_QUERY_STATES:
        state = record.state  # READY comes only from the store, with its ready and expiry times
    return dataclasses.replace(record, banks=banks, state=state)


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
