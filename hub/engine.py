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

The engine never holds plaintext personal data at rest: the subject is
sealed in the store and only opened in memory to build bank requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import Clock
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
from hub.logging import get_logger
from hub.report import BankOutcome, build_report, decode_answer, decode_report, encode_answer, encode_report
from hub.store.db import Database
from hub.store.queries import QueryStore
from hub.user_sealing import is_user_sealed

ReadyListener = Callable[[QueryRecord], Awaitable[None]]
ReportSealer = Callable[[str, bytes, bytes], Awaitable[Sealed | None]]
"""(user id, encoded report, associated data) -> the report sealed to the
user (hub.identity.report_keys), or None to keep the hub's envelope."""
ReportOpener = Callable[[Sealed, bytes], bytes]
_FINAL_QUERY_STATES = (QueryState.READY, QueryState.EXPIRED)
log = get_logger("hub.engine")


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
    ) -> None:
        self._config = config
        self._keys = keys
        self._clock = clock
        self._store = QueryStore(db)
        self._fanout = fanout
        self._run_fanout = run_fanout
        self._alarm = Alarm()
        self._started = False
        self._stopping = False
        self._bank_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._subjects: dict[str, Subject] = {}
        self._watchers: dict[str, set[asyncio.Queue[QueryEvent]]] = {}
        # The latest record of each watched query, patched per bank outcome:
        # re-reading all n bank rows per outcome would make a query O(n^2).
        self._snapshots: dict[str, QueryRecord] = {}
        self._listeners: list[ReadyListener] = []
        self._report_sealer: ReportSealer | None = None

    # -- lifecycle -----------------------------------------------------------

    async def migrate(self) -> None:
        await self._store.migrate()

    async def start(self) -> None:
        """Resumes every unfinished query, and re-runs ready listeners for
        READY queries whose notification was not recorded."""
        await self._store.migrate()
        if self._run_fanout and self._fanout is None:
            self._fanout = Fanout(self._config)
        self._started = True
        self._stopping = False
        unfinished = await self._store.unfinished_ids()
        for query_id in unfinished:
            await self._resume(query_id)
        for query_id in await self._store.ready_unnotified_ids():
            self._spawn(self._notify(query_id))
        if unfinished:
            log.info("engine_resumed", queries=len(unfinished))

    async def stop(self, grace: float = 5.0) -> None:
        """Stops new attempts, lets in-flight bank streams finish for up to
        `grace` seconds (their outcome is persisted), then cancels the rest;
        those banks stay PENDING and are resumed on the next start."""
        self._stopping = True
        self._alarm.wake_all()
        tasks = list(self._bank_tasks.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        background = list(self._background)
        if background:
            _, late_bg = await asyncio.wait(background, timeout=grace)
            for task in late_bg:
                task.cancel()
            await asyncio.gather(*late_bg, return_exceptions=True)
        if self._fanout is not None:
            await self._fanout.close()
        self._started = False
        log.info("engine_stopped", interrupted_banks=sum(1 for t in tasks if t.cancelled()))

    def wake(self) -> None:
        """Ends every retry wait now, so each bank task re-checks its window
        and breaker (call after moving a manual clock)."""
        self._alarm.wake_all()

    def add_ready_listener(self, listener: ReadyListener) -> None:
        self._listeners.append(listener)

    def set_report_sealer(self, sealer: ReportSealer) -> None:
        """Issue 12: READY reports are sealed by `sealer` (to the user's
        password-derived key) instead of the hub's envelope when it returns
        a sealed item; the hub then holds no key that opens them."""
        self._report_sealer = sealer

    # -- commands ------------------------------------------------------------

    async def submit(self, new: NewQuery) -> QueryRecord:
        _check_new_query(new, self._config)
        existing = await self._store.get(new.query_id)
        if existing is not None:
            return existing
        now = self._clock.now()
        due = now + self._config.timings.report_window
        plaintext = json.dumps({"n": new.subject.full_name, "i": new.subject.id_number}).encode()
        sealed = self._keys.envelope.seal(plaintext, _subject_context(new.query_id))
        inserted = await self._store.insert(new, sealed, now, due)
        record = await self._store.get(new.query_id)
        assert record is not None
        if inserted:
            log.info("query_accepted", query_id=new.query_id, banks=len(new.bank_codes))
            if self._run_fanout and self._started and not self._stopping:
                self._subjects[new.query_id] = new.subject
                self._launch(record)
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
        READY. Raises KeyError (on first iteration) for an unknown query."""
        queue: asyncio.Queue[QueryEvent] = asyncio.Queue()
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
                if event.changed_bank_code in seen and event.query.state not in _FINAL_QUERY_STATES:
                    continue  # already in the snapshot
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

    # -- the fan-out ---------------------------------------------------------

    async def _resume(self, query_id: str) -> None:
        record = await self._store.get(query_id)
        if record is None:
            return
        if all(b.state != BankState.PENDING for b in record.banks):
            await self._complete(query_id)  # crashed between the last answer and the report
            return
        if self._run_fanout:
            self._launch(record)

    def _launch(self, record: QueryRecord) -> None:
        for bank in record.banks:
            key = (record.query_id, bank.bank_code)
            if bank.state == BankState.PENDING and key not in self._bank_tasks:
                task = asyncio.create_task(
                    self._run_bank(record, bank.bank_code, bank.attempt_count),
                    name=f"bank:{bank.bank_code}:{record.query_id}",
                )
                self._bank_tasks[key] = task
                task.add_done_callback(self._forget_task(key))

    def _forget_task(self, key: tuple[str, str]) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._bank_tasks.pop(key, None)

        return forget

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

    async def _run_bank(self, record: QueryRecord, bank_code: str, attempts: int) -> None:
        query_id = record.query_id
        assert self._fanout is not None
        try:
            subject = await self._subject(query_id)
            if subject is None:
                log.error("subject_missing", query_id=query_id, bank=bank_code)
                outcome: FinalOutcome | None = FinalOutcome(BankState.NOT_ANSWERED, "SUBJECT_UNAVAILABLE", attempts)
            else:
                request = self._request(record, bank_code, subject)

                async def on_attempt(count: int, reason: str) -> None:
                    log.info("bank_attempt_failed", query_id=query_id, bank=bank_code, attempt=count, reason=reason)
                    await self._store.record_attempts(query_id, bank_code, count)

                ctx = TaskContext(
                    query_id=query_id,
                    due=record.report_due_time,
                    clock=self._clock,
                    alarm=self._alarm,
                    stopping=lambda: self._stopping,
                    on_attempt=on_attempt,
                )
                outcome = await run_bank_task(self._fanout, self._fanout.lane(bank_code), request, attempts, ctx)
            if outcome is not None:
                await self._finish(query_id, bank_code, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a store failure: the bank stays PENDING and is resumed on restart.
            log.error("bank_task_failed", exc_info=True, query_id=query_id, bank=bank_code)

    async def _finish(self, query_id: str, bank_code: str, outcome: FinalOutcome) -> None:
        sealed = None
        card_count = 0
        if outcome.answer is not None:
            card_count = len(outcome.answer.cards)
            sealed = self._keys.envelope.seal(encode_answer(outcome.answer), _answer_context(query_id, bank_code))
        finished_at = self._clock.now()
        pending = await self._store.finish_bank(
            query_id,
            bank_code,
            outcome.state,
            outcome.reason,
            outcome.attempt_count,
            card_count,
            sealed,
            finished_at,
        )
        if pending is None:
            return
        log.info(
            "bank_final",
            query_id=query_id,
            bank=bank_code,
            state=outcome.state.value,
            reason=outcome.reason,
            attempts=outcome.attempt_count,
            cards=card_count,
        )
        progress = BankProgress(
            bank_code, outcome.state, outcome.reason, outcome.attempt_count, card_count, finished_at
        )
        if pending == 0:
            await self._complete(query_id)
            self._snapshots.pop(query_id, None)  # READY: the next publish re-reads the final record once
        await self._publish(query_id, progress, QueryState.READY if pending == 0 else QueryState.RUNNING)

    async def _complete(self, query_id: str) -> None:
        outcomes = []
        for progress, sealed in await self._store.answers(query_id):
            answer = None
            if sealed is not None:
                plaintext = self._keys.envelope.open(sealed, _answer_context(query_id, progress.bank_code))
                answer = decode_answer(progress.bank_code, plaintext)
            outcomes.append(BankOutcome(progress, answer))
        now = self._clock.now()
        expire = now + self._config.timings.report_retention
        report = build_report(query_id, now, expire, outcomes)
        sealed_report = await self._seal_report(query_id, encode_report(report))
        completed = await self._store.complete(query_id, sealed_report, now, expire)
        self._subjects.pop(query_id, None)
        if completed:
            log.info("query_ready", query_id=query_id, cards=len(report.cards), banks=len(report.banks))
            self._spawn(self._notify(query_id))

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
        if record.state not in _FINAL_QUERY_STATES:
            self._snapshots[query_id] = record
        event = QueryEvent(record, progress.bank_code)
        for queue in list(self._watchers.get(query_id, ())):
            queue.put_nowait(event)

    async def _notify(self, query_id: str) -> None:
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
                return  # not recorded as notified: re-run on the next start
        await self._store.mark_notified(query_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


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
