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

Several replicas (issue 8) run this engine on one PostgreSQL database.
Each bank task is leased to one replica (hub.store.queries): the replica
that accepts a query leases its tasks at once; every replica's lease loop
renews its own leases, claims tasks whose lease ran out (a dead replica's),
builds reports a dead replica left unbuilt, and sends ready SMSs nobody
sent. Outcomes are fenced by the lease epoch. WatchQuery follows progress
from the store's PROGRESS notifications, so it works on any replica
whichever replica does the work. On SQLite the same code runs in one
process, which simply claims every pending task when it starts.

The engine never holds plaintext personal data at rest: the subject is
sealed in the store and only opened in memory to build bank requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import Clock
from hub import tracing
from hub.config import BankEndpoint, HubConfig
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
from hub.fanout.breaker import CircuitBreaker
from hub.logging import get_logger
from hub.report import BankOutcome, build_report, decode_answer, decode_report, encode_answer, encode_report
from hub.sealing import AnswerSealer
from hub.store.bank_health import BankHealthStore, wall_us
from hub.store.db import Database
from hub.store.erasure import USER_DELETED
from hub.store.health import StoreHealth
from hub.store.queries import PROGRESS, Claim, Progress, QueryStore
from hub.user_sealing import is_user_sealed
from hub.validation import BankAnswer

ReadyListener = Callable[[QueryRecord], Awaitable[None]]
ReportSealer = Callable[[str, bytes, bytes], Awaitable[Sealed | None]]
"""(user id, encoded report, associated data) -> the report sealed to the
user (hub.identity.report_keys), or None to keep the hub's envelope."""
ReportOpener = Callable[[Sealed, bytes], bytes]
_FINAL_QUERY_STATES = (QueryState.READY, QueryState.EXPIRED)
_CLAIM_BATCH = 500
_STORE_RETRY_FIRST = 0.05
_STORE_RETRY_MAX = 2.0
"""Seconds between retries of a failing store write (doubling from FIRST)."""
_RELEASE_S = 1.0
"""The longest a stopping engine waits to release its leases once its
grace is spent (a store that does not answer by then: the leases run out)."""
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
    ) -> None:
        self._config = config
        self._keys = keys
        self._clock = clock
        self._db = db
        self._store = QueryStore(db)
        self.replica_id = replica_id or default_replica_id()
        """Who holds this process's leases (a restart under the same id takes
        its own leases back at once instead of waiting for them to expire)."""
        self._lease_s = config.timings.lease_duration.total_seconds()
        self._health = BankHealthStore(db, self.replica_id, config.timings.attempt_timeout.total_seconds() + 5)
        self._fanout = fanout
        self._run_fanout = run_fanout
        self._alarm = Alarm()
        self._started = False
        self._stopping = False
        self._bank_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._task_epochs: dict[tuple[str, str], int] = {}
        """The lease epoch each running bank task was launched under."""
        self._renewed: set[tuple[str, str]] = set()
        """The leases the last lease round renewed (still ours)."""
        self._calling: set[tuple[str, str]] = set()
        self._records: dict[str, QueryRecord] = {}
        """Records of queries with bank tasks running here (their request
        needs the create and due times); dropped when the last task ends."""
        self._progress: asyncio.Queue[Progress] = asyncio.Queue()
        # Store health and its probe (issue 21): an idle replica comes back too.
        self._store_health = StoreHealth(
            db,
            config.timings.store_probe_interval.total_seconds(),
            config.timings.database_command_timeout.total_seconds(),
        )
        self._held: dict[str, Progress] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        """The progress and lease loops: cancelled at stop, never waited for."""
        self._subjects: dict[str, Subject] = {}
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
        await self._health.migrate()
        await self._sealer.migrate()

    async def start(self) -> None:
        """Claims the bank tasks nobody holds (on SQLite: every pending one),
        builds reports left unbuilt, sends ready SMSs nobody sent, then keeps
        doing so in the lease loop."""
        await self.migrate()
        if self._run_fanout:
            if self._fanout is None:
                self._fanout = Fanout(self._config)
            if self._db.shared:
                self._fanout.share(self._shared_slot, self._publish_breaker)
                await self._health.start(self._follow_breaker)
                await self._follow_open_breakers()
        await self._db.listen(PROGRESS, self._on_progress)
        add_reconnect = getattr(self._db, "add_reconnect_listener", None)
        if add_reconnect is not None:
            add_reconnect(self._resync_watchers)
            if self._run_fanout and self._db.shared:
                add_reconnect(lambda: self._spawn(self._follow_open_breakers()))
        self._started = True
        self._stopping = False
        self._loops = [self._spawn(self._progress_loop())]
        resumed = await self._housekeeping(first=True)
        if resumed:
            log.info("engine_resumed", banks=resumed)
        self._loops.append(self._spawn(self._lease_loop()))

    async def stop(self, grace: float = 5.0) -> None:
        """Stops new attempts, lets in-flight bank streams finish until one
        deadline `grace` seconds from now (their outcome is persisted), then
        cancels the rest; those banks stay PENDING and are resumed on the
        next start. The leases are released even past the deadline (bounded
        by _RELEASE_S); the progress and lease loops are cancelled, not
        waited for; other background work (SMS, reports) shares the same
        deadline. An idle engine stops at once (issue 19)."""
        clock = asyncio.get_running_loop()
        deadline = clock.time() + max(0.0, grace)
        self._stopping = True
        self._alarm.wake_all()
        tasks = list(self._bank_tasks.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - clock.time()))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._run_fanout:
            with contextlib.suppress(Exception):  # others resume these banks at once
                await asyncio.wait_for(self._store.release(self.replica_id), max(deadline - clock.time(), _RELEASE_S))
        for task in self._loops:
            task.cancel()
        background = list(self._background)
        if background:
            _, late_bg = await asyncio.wait(background, timeout=max(0.0, deadline - clock.time()))
            for task in late_bg:
                task.cancel()
            await asyncio.gather(*late_bg, return_exceptions=True)
        if self._fanout is not None:
            await self._fanout.close()
        await self._store_health.close()
        self._started = False
        log.info("engine_stopped", interrupted_banks=sum(1 for t in tasks if t.cancelled()))

    def wake(self) -> None:
        """Ends every retry wait now, so each bank task re-checks its window
        and breaker (call after moving a manual clock)."""
        self._alarm.wake_all()

    def reconfigure(self, config: HubConfig) -> None:
        """A reloaded configuration (HubServer.reload): new queries are checked
        against its bank registry; bank tasks already running keep going."""
        self._config = config

    def add_ready_listener(self, listener: ReadyListener) -> None:
        self._listeners.append(listener)

    def set_report_sealer(self, sealer: ReportSealer) -> None:
        """Issue 12: READY reports are sealed by `sealer` (to the user's
        password-derived key) instead of the hub's envelope when it returns
        a sealed item; the hub then holds no key that opens them."""
        self._report_sealer = sealer

    # -- commands ------------------------------------------------------------

    async def submit(self, new: NewQuery) -> QueryRecord:
        """Accepts `new` durably (idempotent on its query id) and, when this
        replica runs the fan-out, starts its bank calls. One store write and
        no read for a new query: the record returned is the one written."""
        _check_new_query(new, self._config)
        now = self._clock.now()
        due = now + self._config.timings.report_window
        plaintext = json.dumps({"n": new.subject.full_name, "i": new.subject.id_number}).encode()
        sealed = self._keys.envelope.seal(plaintext, _subject_context(new.query_id))
        runs_here = self._run_fanout and self._started and not self._stopping
        expires = wall_us() + int(self._lease_s * 1e6)
        lease = (self.replica_id, expires) if runs_here else None
        if not await self._store.insert(new, sealed, now, due, lease):
            existing = await self._store.get(new.query_id)
            assert existing is not None
            return existing
        attempts = 1 if runs_here else 0  # the insert counted the leased first attempt
        record = QueryRecord(
            query_id=new.query_id,
            user_id=new.user_id,
            state=QueryState.ACCEPTED,
            bank_codes=tuple(new.bank_codes),
            banks=tuple(BankProgress(code, BankState.PENDING, attempt_count=attempts) for code in new.bank_codes),
            create_time=now,
            report_due_time=due,
            consent_text_version=new.consent_text_version,
        )
        log.info("query_accepted", query_id=new.query_id, banks=len(new.bank_codes))
        if runs_here:
            self._subjects[new.query_id] = new.subject
            self._records[new.query_id] = record
            # Another replica can claim a task only once its lease has
            # expired; a third of a lease is the margin for clock skew.
            prepaid_until = expires - int(self._lease_s * 1e6 / 3)
            for code in new.bank_codes:
                self._launch(Claim(new.query_id, code, 1, 0, "", prepaid_until))
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

    # -- leases ----------------------------------------------------------------

    async def _lease_loop(self) -> None:
        """Every third of a lease: renew ours, cancel calls whose lease was
        taken over, claim what nobody holds, finish orphaned queries, send
        unsent ready SMSs. A store failure here is retried next round."""
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
                log.error("lease_loop_failed", exc_info=True)
                self._set_store_healthy(False, type(error).__name__)
                failed = True
            else:
                if failed:  # the store took this round's writes: healthy again (issue 19)
                    self._set_store_healthy(True)
                    failed = False

    async def _housekeeping(self, first: bool = False) -> int:
        claimed = 0
        if self._run_fanout:
            expires = wall_us() + int(self._lease_s * 1e6)
            if not first:
                held = await self._store.renew(self.replica_id, expires)
                self._renewed = held
                for key in list(self._calling):
                    task = self._bank_tasks.get(key)
                    if key not in held and task is not None:
                        log.warning("lease_lost", query_id=key[0], bank=key[1])
                        task.cancel()
                # Leases we hold with no task running here (it died on an
                # error): give them back, so the claim below starts them again.
                idle = [key for key in held if key not in self._bank_tasks]
                if idle:
                    await self._store.release_tasks(self.replica_id, idle)
            # A SQLite file has one process: at start every lease in it is a
            # previous run's, stale (later rounds must not take our own).
            now = 2**62 if first and not self._db.shared else wall_us()
            while True:
                batch = await self._store.claim(self.replica_id, now, expires, _CLAIM_BATCH, reclaim=first)
                for claim in batch:
                    self._launch(claim)
                claimed += len(batch)
                if len(batch) < _CLAIM_BATCH:
                    break
            quiet_since = self._clock.now() - self._config.timings.lease_duration
            for query_id in await self._store.orphaned_ids(self._clock.now() if first else quiet_since):
                await self._complete(query_id)
        for query_id in await self._store.ready_unnotified_ids(wall_us()):
            self._spawn(self._notify(query_id))
        return claimed

    # -- the fan-out ---------------------------------------------------------

    def _launch(self, claim: Claim) -> None:
        """Runs a claimed bank task. A task still running here under an
        older epoch (its lease was lost, and it was cancelled or will be
        fenced, but has not ended yet) is replaced: the new task waits for
        it to end, then runs under the new epoch. Dropping the new claim
        instead would leave the lease renewed by this replica forever with
        no task behind it, and the query never READY."""
        key = (claim.query_id, claim.bank_code)
        old = self._bank_tasks.get(key)
        if old is not None and not old.done():
            if self._task_epochs.get(key, 0) >= claim.epoch or key in self._renewed:
                return  # still ours (on SQLite each round re-claims the tasks it runs)
            old.cancel()  # its lease was lost, its epoch fenced: it can never write an outcome
        task = asyncio.create_task(self._run_bank(claim, old), name=f"bank:{claim.bank_code}:{claim.query_id}")
        self._bank_tasks[key] = task
        self._task_epochs[key] = claim.epoch
        task.add_done_callback(self._forget_task(key))

    def _forget_task(self, key: tuple[str, str]) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            if self._bank_tasks.get(key) is task:
                del self._bank_tasks[key]
                self._task_epochs.pop(key, None)
            if not any(k[0] == key[0] for k in self._bank_tasks):
                # Issue 17: the last of this replica's calls for the query
                # ended: its subject (name + ID number) leaves memory here,
                # whichever replica completes the query.
                self._records.pop(key[0], None)
                self._subjects.pop(key[0], None)
                self._sealer.forget(key[0])

        return forget

    async def _record(self, query_id: str) -> QueryRecord | None:
        record = self._records.get(query_id)
        if record is None:
            record = await self._store.get(query_id)
            if record is not None:
                self._records[query_id] = record
        return record

    async def _subject(self, query_id: str) -> Subject | None:
        subject = self._subjects.get(query_id)
        if subject is None:
            sealed = await self._store.subject(query_id)
            if sealed is None:
                return None
            data = json.loads(self._keys.envelope.open(sealed, _subject_context(query_id)))
            subject = Subject(full_name=data["n"], id_number=data["i"])
            self._subjects[query_id] = subject
        return subject

    def _request(self, record: QueryRecord, bank_code: str, subject: Subject) -> bank_pb.ListCardsRequest:
        return self._keys.consent_signer.list_cards_request(
            query_id=record.query_id,
            bank_code=bank_code,
            full_name=subject.full_name,
            id_number=subject.id_number,
            issue_time=record.create_time,
            expire_time=record.report_due_time,
            consent_text_version=record.consent_text_version,
        )

    async def _run_bank(self, claim: Claim, after: asyncio.Task[None] | None = None) -> None:
        query_id, bank_code, epoch = claim.query_id, claim.bank_code, claim.epoch
        key = (query_id, bank_code)
        assert self._fanout is not None
        if after is not None:
            # The replaced task's call ends first: one call per (query, bank) here.
            await asyncio.gather(after, return_exceptions=True)
        try:
            record = await self._record(query_id)
            subject = await self._subject(query_id)
            if record is None or subject is None:
                log.error("subject_missing", query_id=query_id, bank=bank_code)
                outcome: FinalOutcome | None = FinalOutcome(
                    BankState.NOT_ANSWERED, "SUBJECT_UNAVAILABLE", claim.attempt_count
                )
            else:
                request = self._request(record, bank_code, subject)

                async def on_failure(count: int, reason: str) -> None:
                    log.info("bank_attempt_failed", query_id=query_id, bank=bank_code, attempt=count, reason=reason)
                    await self._stored(lambda: self._store.record_failure(query_id, bank_code, epoch, reason))

                def in_call(calling: bool) -> None:
                    if calling:
                        self._calling.add(key)
                    else:
                        self._calling.discard(key)

                ctx = TaskContext(
                    query_id=query_id,
                    due=record.report_due_time,
                    clock=self._clock,
                    alarm=self._alarm,
                    stopping=lambda: self._stopping,
                    begin_attempt=self._attempt_starter(claim),
                    on_failure=on_failure,
                    in_call=in_call,
                )
                lane = self._fanout.lane(bank_code)
                outcome = await run_bank_task(self._fanout, lane, request, claim.attempt_count, ctx, claim.last_error)
            if outcome is not None:
                await self._finish(query_id, bank_code, outcome, epoch)
        except asyncio.CancelledError:
            if self._stopping:
                raise
            # Our lease was taken over: the new holder calls the bank.
        except Exception:
            # A bug or a store failure: the lease runs out and the task is
            # claimed again (by this replica or another).
            log.error("bank_task_failed", exc_info=True, query_id=query_id, bank=bank_code)

    def _attempt_starter(self, claim: Claim) -> Callable[[], Awaitable[int | None]]:
        """`begin_attempt` for a bank task: counts each attempt durably and
        checks the lease (issues 8 and 9). The first attempt of a task leased
        at insert was counted by the insert: it needs no write while the
        lease cannot have expired (`Claim.prepaid_until`), and afterwards
        only the fenced check."""
        prepaid = claim.prepaid_until

        async def begin() -> int | None:
            nonlocal prepaid
            if prepaid:
                until, prepaid = prepaid, 0
                if wall_us() < until:
                    return 1
                return await self._stored(
                    lambda: self._store.start_attempt(claim.query_id, claim.bank_code, claim.epoch, count=False)
                )
            return await self._stored(lambda: self._store.start_attempt(claim.query_id, claim.bank_code, claim.epoch))

        return begin

    async def _finish(self, query_id: str, bank_code: str, outcome: FinalOutcome, epoch: int) -> None:
        sealed = None
        card_count = 0
        answer = outcome.answer
        if answer is not None:
            card_count = len(answer.cards)
            # The key is read from the store: retried like the write (issue 9).
            sealed = await self._stored(lambda: self._seal_answer(query_id, bank_code, answer))
            if sealed is None:
                return  # stopping: the bank stays PENDING for the next start
        finished_at = self._clock.now()
        pending = await self._stored(
            lambda: self._store.finish_bank(
                query_id,
                bank_code,
                outcome.state,
                outcome.reason,
                outcome.attempt_count,
                card_count,
                sealed,
                finished_at,
                epoch,
            )
        )
        if pending is None:
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

    async def _seal_answer(self, query_id: str, bank_code: str, answer: BankAnswer) -> Sealed:
        """Issue 17: sealed to the user (hub.sealing); the envelope only for a
        user who has no key at all."""
        sealed = await self._sealer.seal_answer(query_id, answer)
        if sealed is None:
            sealed = self._keys.envelope.seal(encode_answer(answer), _answer_context(query_id, bank_code))
        return sealed

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
        self._subjects.pop(query_id, None)
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

    # -- shared bank health (PostgreSQL replicas) --------------------------------

    def _shared_slot(self, endpoint: BankEndpoint) -> contextlib.AbstractAsyncContextManager[None]:
        return self._health.slot(endpoint.code, endpoint.max_concurrent)

    def _publish_breaker(self, bank_code: str, breaker: CircuitBreaker) -> None:
        self._spawn(self._health.publish_breaker(bank_code, breaker.open_for()))

    def _follow_breaker(self, bank_code: str, open_for: float) -> None:
        """Another replica's verdict on a bank. The lane is made if this
        replica has not called the bank yet: its first call must wait too."""
        if self._fanout is None:
            return
        try:
            lane = self._fanout.lane(bank_code)
        except KeyError:  # a bank this replica's registry does not have
            return
        lane.breaker.follow(open_for)

    async def _follow_open_breakers(self) -> None:
        """Verdicts announced before this replica listened (it started
        later, or its listening connection was lost meanwhile)."""
        try:
            verdicts = await self._health.open_breakers()
        except Exception:  # the store is down again: the next reconnect retries
            log.warning("breakers_not_read", exc_info=True)
            return
        for bank_code, open_for in verdicts.items():
            self._follow_breaker(bank_code, open_for)

    # -- account closure (issue 22) ---------------------------------------------

    def end_query(self, query_id: str) -> None:
        """The query was erased with its user's account (hub.store.erasure,
        announced on PROGRESS to every replica): its bank calls here are
        cancelled now (the store has fenced its tasks, so an outcome that
        arrives anyway is discarded), and what this process held of it is
        dropped."""
        for (queried, bank_code), task in list(self._bank_tasks.items()):
            if queried == query_id and not task.done():
                log.info("bank_call_ended", query_id=query_id, bank=bank_code, reason=USER_DELETED)
                task.cancel()
        self._subjects.pop(query_id, None)
        self._records.pop(query_id, None)
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
        now = wall_us()
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
