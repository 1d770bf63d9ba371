"""An in-memory engine behind the journey's interface
(hub.identity.journey.QueryEngineApi), for the unit layer.

It keeps queries in a dict and never calls a bank: a test moves a query to
READY with `finish()` at the injected clock's time, so journey rules (R6,
R9, R11, R12, paging) run in milliseconds. The real engine
(hub.engine.QueryEngine) is tested with real banks in tests/hub and
tests/api; what this fake answers follows its documented contract: queries
newest first, `before` excludes the (create_time, query_id) cursor, a
report past its expiry is ReportUnavailable(EXPIRED).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

from cardlookup.clock import Clock
from hub.core.config import Timings
from hub.core.domain import (
    BankProgress,
    BankState,
    NewQuery,
    QueryEvent,
    QueryRecord,
    QueryState,
    Report,
    ReportUnavailable,
)
from hub.keys.crypto import Sealed


class FakeEngine:
    def __init__(self, clock: Clock, timings: Timings) -> None:
        self._clock = clock
        self._timings = timings
        self.records: dict[str, QueryRecord] = {}
        self.submitted: list[NewQuery] = []
        """Every query the journey handed over, in order (what would reach the banks)."""
        self._listeners: list[Callable[[QueryRecord], Awaitable[None]]] = []
        self._changed = asyncio.Condition()

    # --- QueryEngineApi ---

    async def submit(self, new: NewQuery) -> QueryRecord:
        if new.query_id in self.records:
            return self.records[new.query_id]
        now = self._clock.now()
        record = QueryRecord(
            query_id=new.query_id,
            user_id=new.user_id,
            state=QueryState.RUNNING,
            bank_codes=new.bank_codes,
            banks=tuple(BankProgress(code, BankState.PENDING) for code in new.bank_codes),
            create_time=now,
            report_due_time=now + self._timings.report_window,
            consent_text_version=new.consent_text_version,
        )
        self.submitted.append(new)
        self.records[new.query_id] = record
        return record

    async def get(self, query_id: str) -> QueryRecord | None:
        return self.records.get(query_id)

    async def list_for_user(
        self, user_id: str, limit: int, before: tuple[dt.datetime, str] | None = None
    ) -> list[QueryRecord]:
        mine = sorted(
            (r for r in self.records.values() if r.user_id == user_id),
            key=lambda r: (r.create_time, r.query_id),
            reverse=True,
        )
        if before is not None:
            mine = [r for r in mine if (r.create_time, r.query_id) < before]
        return mine[:limit]

    async def latest_ready_time(self, user_id: str) -> dt.datetime | None:
        times = [r.ready_time for r in self.records.values() if r.user_id == user_id and r.ready_time]
        return max(times, default=None)

    async def unfinished_for_user(self, user_id: str) -> QueryRecord | None:
        for record in self.records.values():
            if record.user_id == user_id and record.state in (QueryState.ACCEPTED, QueryState.RUNNING):
                return record
        return None

    async def watch(self, query_id: str) -> AsyncIterator[QueryEvent]:
        if query_id not in self.records:
            raise KeyError(query_id)
        last = self.records[query_id]
        yield QueryEvent(last, None)
        while last.state not in (QueryState.READY, QueryState.EXPIRED):
            seen = last
            async with self._changed:
                await self._changed.wait_for(lambda seen=seen: self.records.get(query_id) != seen)
            if query_id not in self.records:
                raise KeyError(query_id)
            last = self.records[query_id]
            yield QueryEvent(last, None)

    async def read_report(self, query_id: str, opener: Callable[[Sealed, bytes], bytes] | None = None) -> Report:
        record = self.records.get(query_id)
        if record is None:
            raise KeyError(query_id)
        if record.state is not QueryState.READY or record.ready_time is None or record.report_expire_time is None:
            raise ReportUnavailable(record.state)
        if record.report_expire_time <= self._clock.now():
            raise ReportUnavailable(QueryState.EXPIRED, record.report_expire_time)
        return Report(query_id, record.ready_time, record.report_expire_time, (), (), ())

    def add_ready_listener(self, listener: Callable[[QueryRecord], Awaitable[None]]) -> None:
        self._listeners.append(listener)

    # --- what a test does instead of the banks ---

    async def finish(self, query_id: str) -> QueryRecord:
        """Every bank answered now: the query is READY, kept for the retention
        period, and the ready listeners run (R9)."""
        now = self._clock.now()
        record = self.records[query_id]
        record = dataclasses.replace(
            record,
            state=QueryState.READY,
            banks=tuple(dataclasses.replace(b, state=BankState.ANSWERED, finish_time=now) for b in record.banks),
            ready_time=now,
            report_expire_time=now + self._timings.report_retention,
        )
        async with self._changed:
            self.records[query_id] = record
            self._changed.notify_all()
        for listener in self._listeners:
            await listener(record)
        return record
