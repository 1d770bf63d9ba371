"""Handing a bank task's records to the store's group commit
(hub.store.batches): each call counted as it is sent, each transient
failure, and the final outcome with the bank's sealed answer.

A store write that fails is retried until it succeeds (`stored`): a full
disk or a database refusing writes must not lose a bank's answer, which is
kept in memory meanwhile (issue 9); the replica reports its store unhealthy
until then (hub.store.health). The outcome whose commit brings the query's
pending count to zero hands the query to completion.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cardlookup.clock import Clock
from hub.core.backoff import Backoff
from hub.core.logging import get_logger
from hub.fanout import Alarm, FinalOutcome
from hub.fanout.validation import BankAnswer
from hub.keys.crypto import HubKeys, Sealed
from hub.reports.contexts import answer_context
from hub.reports.report import encode_answer
from hub.reports.sealing import AnswerSealer
from hub.store.batches import Failure, GroupCommit, Outcome
from hub.store.db import Database
from hub.store.health import StoreHealth

T = TypeVar("T")
log = get_logger("hub.engine")

STORE_RETRY = Backoff(initial=0.05, maximum=2.0, multiplier=2.0, jitter=0.0)
"""Seconds between retries of a failing store write: 0.05, doubling, at most 2."""


class OutcomeWriter:
    def __init__(
        self,
        db: Database,
        replica_id: str,
        keys: HubKeys,
        sealer: AnswerSealer,
        clock: Clock,
        alarm: Alarm,
        health: StoreHealth,
        stopping: Callable[[], bool],
        on_last: Callable[[str], Awaitable[None]],
    ) -> None:
        """`on_last(query_id)`: the outcome just committed was the query's last."""
        self.batch = GroupCommit(db, replica_id)
        self._keys = keys
        self._sealer = sealer
        self._clock = clock
        self._alarm = alarm
        self._health = health
        self._stopping = stopping
        self._on_last = on_last

    def set_healthy(self, healthy: bool, error: str = "") -> None:
        if healthy:
            self._health.succeeded()
        else:
            self._health.failed(error)

    async def stored(self, write: Callable[[], Awaitable[T]]) -> T | None:
        """Runs a store write of the fan-out until it succeeds (see the
        module). Returns None, leaving the bank PENDING for the next start,
        only if the hub stops first."""
        failures = 0
        while True:
            try:
                result = await write()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.set_healthy(False, type(error).__name__)
                if self._stopping():
                    return None
                failures += 1
                await self._alarm.sleep(STORE_RETRY.delay(failures))
                continue
            self.set_healthy(True)
            return result

    def count_call(self, query_id: str, bank_code: str, epoch: int, count: int) -> None:
        """Issue 21: a call counts once it is sent; its record is committed
        with the next batch, without holding the call up."""
        self.batch.post(Failure(query_id, bank_code, epoch, None, count))

    async def failed(self, query_id: str, bank_code: str, epoch: int, reason: str, count: int) -> None:
        """A transient failure, durably (its reason is the bank's last error)."""
        await self.stored(lambda: self.batch.add(Failure(query_id, bank_code, epoch, reason, count)))

    async def _seal_answer(self, query_id: str, bank_code: str, answer: BankAnswer) -> Sealed:
        """A validated answer, sealed for storage before it enters a batch
        (outside the store's transaction): to the user (hub.reports.sealing, issue
        17); the envelope only for a user who has no key at all."""
        sealed = await self._sealer.seal_answer(query_id, answer)
        if sealed is None:
            sealed = self._keys.envelope.seal(encode_answer(answer), answer_context(query_id, bank_code))
        return sealed

    async def finish(self, query_id: str, bank_code: str, outcome: FinalOutcome, epoch: int) -> None:
        """Stores a bank's final outcome (with its sealed answer) once its
        batch commits; completes the query if it was the last."""
        sealed = None
        card_count = 0
        answer = outcome.answer
        if answer is not None:
            card_count = len(answer.cards)
            # The key is read from the store: retried like the write (issue 9).
            sealed = await self.stored(lambda: self._seal_answer(query_id, bank_code, answer))
            if sealed is None:
                return  # stopping: the bank stays PENDING for the next owner
        now: dt.datetime = self._clock.now()
        write = Outcome(
            query_id,
            bank_code,
            epoch,
            outcome.state,
            outcome.reason,
            outcome.attempt_count,
            card_count,
            sealed,
            now,
        )
        # Stored only once its batch commits; retried while the store fails.
        pending = await self.stored(lambda: self.batch.add(write))
        if pending is None:
            if not self._stopping():
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
            await self._on_last(query_id)

    async def close(self) -> None:
        await self.batch.close()
