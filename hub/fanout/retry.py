"""The retry loop of one bank task (R6).

`run_bank_task` keeps calling a bank until it answers, is rejected, or the
query's report window closes (judged by the injected clock), waiting with
exponential backoff and jitter between attempts, honouring the lane's
breaker and concurrency cap (every number from the fan-out's
`BankCallPolicy`, hub.fanout.policy). Before each call it asks `begin_attempt` to
confirm that this replica still holds the bank's lane (a replica that lost
or is handing over the lane must not call) and to count the call. It
returns None when the hub is stopping or the lane is lost: the task stays
PENDING in the store and is resumed by whichever replica owns the lane
next. `attempt_count` counts calls made (issue 21): a call is counted when
it is sent, and recorded durably with its failure or its outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import Clock
from hub.core.domain import BankState
from hub.fanout.caller import Answered, Rejected, Transient
from hub.fanout.lanes import BankLane, Fanout
from hub.fanout.validation import BankAnswer

WINDOW_CLOSED = "REPORT_WINDOW_CLOSED"
NEVER_CALLED = "NOT_CALLED"
CONSENT_EXPIRED = "BANK_REFUSED:CONSENT_EXPIRED"
"""The last error of a bank the window closed on before any call was made."""


@dataclass(frozen=True)
class FinalOutcome:
    state: BankState
    reason: str
    attempt_count: int
    answer: BankAnswer | None = None


class Alarm:
    """Sleeps that end early when woken (clock moved, hub stopping)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake_all(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass


@dataclass
class TaskContext:
    query_id: str
    due: dt.datetime
    clock: Clock
    alarm: Alarm
    stopping: Callable[[], bool]
    begin_attempt: Callable[[], Awaitable[int | None]]
    """Asked right before a call: the call's number (calls made so far + 1),
    or None if this replica no longer holds (or is handing over) the lane."""
    on_failure: Callable[[int, str], Awaitable[None]]
    """Records a transient failure (count, reason) durably: the last error
    survives a restart and ends up in `REPORT_WINDOW_CLOSED:<last error>`."""
    in_call: Callable[[bool], None] = lambda _calling: None
    """Told when a call starts (True) and ends (False): a replica cancels a
    call whose lease it lost only while the call is in flight."""


async def run_bank_task(
    fanout: Fanout,
    lane: BankLane,
    request: bank_pb.ListCardsRequest,
    attempts: int,
    ctx: TaskContext,
    last_reason: str = "",
) -> FinalOutcome | None:
    outcome = await _run_bank_task(fanout, lane, request, attempts, ctx, last_reason)
    if outcome is not None:
        fanout.metrics.bank_final(lane.endpoint.code, outcome.state.value, outcome.reason)
    return outcome


async def _run_bank_task(
    fanout: Fanout,
    lane: BankLane,
    request: bank_pb.ListCardsRequest,
    attempts: int,
    ctx: TaskContext,
    last_reason: str,
) -> FinalOutcome | None:
    metrics = fanout.metrics
    failures = 0
    identity_failures = 0
    while True:
        if ctx.stopping():
            return None
        remaining = (ctx.due - ctx.clock.now()).total_seconds()
        if remaining <= 0:
            reason = f"{WINDOW_CLOSED}:{last_reason or NEVER_CALLED}"
            return FinalOutcome(BankState.NOT_ANSWERED, reason, attempts)
        wait = lane.breaker.before_call()
        if wait > 0:
            await ctx.alarm.sleep(min(wait, remaining))
            continue
        try:
            async with lane.limit:
                if ctx.stopping():
                    lane.breaker.on_abandon()
                    return None
                if ctx.clock.now() >= ctx.due:
                    # The window closed while this task waited for a slot: a
                    # call now would carry an expired consent (the bank
                    # refuses it, CONSENT_EXPIRED). R6: not answered in time.
                    lane.breaker.on_abandon()
                    return FinalOutcome(
                        BankState.NOT_ANSWERED, f"{WINDOW_CLOSED}:{last_reason or NEVER_CALLED}", attempts
                    )
                counted = await ctx.begin_attempt()
                if counted is None:
                    lane.breaker.on_abandon()
                    return None
                attempts = counted
                ctx.in_call(True)
                started = time.perf_counter()
                try:
                    with metrics.bank_call(lane.endpoint.code):
                        result = await lane.channels.attempt(lane.endpoint, request, fanout.policy.attempt_timeout)
                finally:
                    ctx.in_call(False)
                seconds = time.perf_counter() - started
        except BaseException:
            lane.breaker.on_abandon()
            raise
        metrics.bank_attempt(lane.endpoint.code, *_result_labels(result), seconds)
        if isinstance(result, Answered):
            lane.breaker.on_success()
            return FinalOutcome(BankState.ANSWERED, "", attempts, result.answer)
        if isinstance(result, Rejected):
            # The bank is reachable and talking: not a health problem.
            lane.breaker.on_success()
            if result.reason == CONSENT_EXPIRED and ctx.clock.now() >= ctx.due:
                # The call left just as the window closed (the consent expires
                # with it): the window closed on this bank, it broke no rule.
                return FinalOutcome(BankState.NOT_ANSWERED, f"{WINDOW_CLOSED}:{last_reason or NEVER_CALLED}", attempts)
            return FinalOutcome(BankState.REJECTED, result.reason, attempts)
        assert isinstance(result, Transient)
        lane.breaker.on_failure()
        failures += 1
        identity_failures = identity_failures + 1 if result.identity else 0
        last_reason = result.reason
        if identity_failures >= fanout.policy.identity_failures:
            return FinalOutcome(BankState.REJECTED, "WRONG_BANK_CERTIFICATE", attempts)
        await ctx.on_failure(attempts, result.reason)
        delay = fanout.backoff.delay(failures, fanout.rng, slow_down=result.slow_down)
        remaining = (ctx.due - ctx.clock.now()).total_seconds()
        await ctx.alarm.sleep(min(delay, max(0.0, remaining)))


def _result_labels(result: Answered | Rejected | Transient) -> tuple[str, str]:
    if isinstance(result, Answered):
        return "answered", ""
    if isinstance(result, Rejected):
        return "rejected", result.reason
    return "transient", result.reason
