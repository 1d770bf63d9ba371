"""The bank tasks running in this replica: one state object per (query,
bank) task (`BankTask`, held by its lane, hub.engine.lanes), what the tasks
of one query share (`QueryWork`: the request's times and the subject), and
the runner that takes a task through the fan-out's retry loop
(hub.fanout.run_bank_task) to its final outcome (hub.engine.batches).

The subject (name + ID number) is opened in memory only to build bank
requests, and dropped when the last of this replica's tasks for the query
ends (issue 17).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import Clock
from hub.core.domain import BankState, Subject
from hub.core.logging import get_logger
from hub.engine.batches import OutcomeWriter
from hub.fanout import Alarm, Fanout, FinalOutcome, TaskContext, run_bank_task
from hub.keys.crypto import HubKeys, Sealed
from hub.reports.contexts import subject_context
from hub.reports.sealing import AnswerSealer
from hub.store.queries import Task

log = get_logger("hub.engine")

WAITING, CALLING, WRITING = "waiting", "calling", "writing"


@dataclass(eq=False)
class BankTask:
    """One (query, bank) task running in this replica's lane."""

    query_id: str
    bank_code: str
    epoch: int
    """The lane epoch it runs under (fences its writes)."""
    attempt_count: int
    last_error: str
    phase: str = WAITING
    """WAITING (for a slot, a retry or the breaker), CALLING the bank, or
    WRITING its outcome (it holds an answer: never cancelled for a handover)."""
    runner: asyncio.Task[None] | None = None


@dataclass(eq=False)
class QueryWork:
    """What the bank tasks of one query running here need of it."""

    create_time: dt.datetime
    due: dt.datetime
    consent_text_version: str
    subject: Subject | None
    sealed_subject: Sealed | None = None
    open: int = 0
    """Its bank tasks running here."""


class BankTasks:
    """Runs bank tasks; holds the `QueryWork` of the queries they belong to."""

    def __init__(
        self,
        keys: HubKeys,
        clock: Clock,
        alarm: Alarm,
        writer: OutcomeWriter,
        sealer: AnswerSealer,
        stopping: Callable[[], bool],
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._alarm = alarm
        self._writer = writer
        self._sealer = sealer
        self._stopping = stopping
        self.queries: dict[str, QueryWork] = {}
        """What the bank tasks running here need of their query; dropped
        when its last task here ends."""
        self.fanout: Fanout | None = None
        """Set when the engine starts its fan-out."""
        self.may_call: Callable[[BankTask], bool] = lambda _task: False
        """Whether this replica still holds the task's lane (hub.engine.lanes)."""

    def submitted(self, query_id: str, work: QueryWork) -> None:
        """A query accepted here: its tasks start with its subject in hand."""
        self.queries.setdefault(query_id, work)

    def forget(self, query_id: str) -> None:
        """Drops what this process holds of the query (its subject, its owner's key)."""
        self.queries.pop(query_id, None)
        self._sealer.forget(query_id)

    def _work_of(self, row: Task) -> QueryWork:
        work = self.queries.get(row.query_id)
        if work is None:
            work = QueryWork(row.create_time, row.due, row.consent_text_version, None, row.subject)
            self.queries[row.query_id] = work
        return work

    def _subject(self, query_id: str, work: QueryWork) -> Subject | None:
        if work.subject is None and work.sealed_subject is not None:
            data = json.loads(self._keys.envelope.open(work.sealed_subject, subject_context(query_id)))
            work.subject = Subject(full_name=data["n"], id_number=data["i"])
        return work.subject

    def _request(self, query_id: str, work: QueryWork, bank_code: str, subject: Subject) -> bank_pb.ListCardsRequest:
        return self._keys.consent_signer.list_cards_request(
            query_id=query_id,
            bank_code=bank_code,
            full_name=subject.full_name,
            id_number=subject.id_number,
            issue_time=work.create_time,
            expire_time=work.due,
            consent_text_version=work.consent_text_version,
        )

    async def run(self, task: BankTask, row: Task) -> None:
        """The runner of one bank task (started by its lane)."""
        query_id, bank_code = task.query_id, task.bank_code
        assert self.fanout is not None
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
                outcome = await self._call(task, request, work.due)
            if outcome is not None:
                task.phase = WRITING
                await self._writer.finish(query_id, bank_code, outcome, task.epoch)
        except asyncio.CancelledError:
            if self._stopping():
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
                self.forget(query_id)

    async def _call(self, task: BankTask, request: bank_pb.ListCardsRequest, due: dt.datetime) -> FinalOutcome | None:
        query_id, bank_code = task.query_id, task.bank_code
        assert self.fanout is not None

        async def begin() -> int | None:
            if not self.may_call(task):
                return None
            task.attempt_count += 1
            self._writer.count_call(query_id, bank_code, task.epoch, task.attempt_count)
            return task.attempt_count

        async def on_failure(count: int, reason: str) -> None:
            log.info("bank_attempt_failed", query_id=query_id, bank=bank_code, attempt=count, reason=reason)
            task.last_error = reason
            await self._writer.failed(query_id, bank_code, task.epoch, reason, count)

        def in_call(calling: bool) -> None:
            task.phase = CALLING if calling else WAITING

        ctx = TaskContext(
            query_id=query_id,
            due=due,
            clock=self._clock,
            alarm=self._alarm,
            stopping=self._stopping,
            begin_attempt=begin,
            on_failure=on_failure,
            in_call=in_call,
        )
        lane = self.fanout.lane(bank_code)
        return await run_bank_task(self.fanout, lane, request, task.attempt_count, ctx, task.last_error)
