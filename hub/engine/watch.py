"""WatchQuery: progress of a query as its bank outcomes become final.

Progress comes from the store's PROGRESS notifications (any replica's
outcome), so a watch works on any replica whichever replica does the work.
Each watched query has a cached record that every outcome patches (O(1) per
outcome instead of re-reading all n bank rows); the last bank's outcome is
held until READY so that watchers see it once, with the READY record (ready
and expiry times come from the store).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from hub.core.domain import BankProgress, BankState, QueryEvent, QueryRecord, QueryState
from hub.core.logging import get_logger
from hub.store.queries import Progress, QueryStore

log = get_logger("hub.engine")

FINAL_QUERY_STATES = (QueryState.READY, QueryState.EXPIRED)
_STATE_ORDER = {QueryState.ACCEPTED: 0, QueryState.RUNNING: 1, QueryState.READY: 2, QueryState.EXPIRED: 3}


class Watchers:
    def __init__(self, store: QueryStore, spawn: Callable[[Coroutine[Any, Any, None]], object]) -> None:
        self._store = store
        self._spawn = spawn
        self.watchers: dict[str, set[asyncio.Queue[QueryEvent | None]]] = {}
        """None in a queue: the query was erased (issue 22)."""
        self.snapshots: dict[str, QueryRecord] = {}
        """The latest record of each watched query, patched per bank outcome."""
        self.held: dict[str, Progress] = {}
        """A query's last bank outcome, held until its READY notification."""
        self._progress: asyncio.Queue[Progress] = asyncio.Queue()

    def on_progress(self, progress: Progress) -> None:
        """Queued for the watchers of this process, if the query has any."""
        if progress.query_id in self.watchers:
            self._progress.put_nowait(progress)

    def end(self, query_id: str) -> None:
        """The query was erased: its watches end (KeyError), its state goes."""
        self.held.pop(query_id, None)
        self.snapshots.pop(query_id, None)
        for queue in list(self.watchers.get(query_id, ())):
            queue.put_nowait(None)

    async def run(self) -> None:
        """Publishes progress to watchers in notification order."""
        while True:
            progress = await self._progress.get()
            try:
                if progress.bank is None:
                    held = self.held.pop(progress.query_id, None)
                    await self._publish_record(progress.query_id, held.bank.bank_code if held and held.bank else None)
                elif progress.pending == 0:
                    self.held[progress.query_id] = progress
                else:
                    await self.publish(progress.query_id, progress.bank, QueryState.RUNNING)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("watch_publish_failed", exc_info=True, query_id=progress.query_id)

    def resync(self) -> None:
        """Progress notifications were missed (the store's listening
        connection was lost): every watched query gets a fresh record."""
        for query_id in list(self.watchers):
            self.snapshots.pop(query_id, None)
            self.held.pop(query_id, None)
            self._spawn(self._publish_record(query_id, None))

    async def _publish_record(self, query_id: str, bank_code: str | None) -> None:
        self.snapshots.pop(query_id, None)
        record = await self._store.get(query_id)
        if record is None:
            return
        event = QueryEvent(record, bank_code)
        for queue in list(self.watchers.get(query_id, ())):
            queue.put_nowait(event)

    async def publish(self, query_id: str, progress: BankProgress, state: QueryState) -> None:
        """Tells the query's watchers that `progress` is final. Patches the
        cached record instead of re-reading the query; patches are monotonic
        (a final bank never goes back to PENDING, a query never goes back in
        state), so the order in which concurrent outcomes are published
        cannot corrupt the record."""
        queues = self.watchers.get(query_id)
        if not queues:
            return
        record = self.snapshots.get(query_id)
        if record is None:
            record = await self._store.get(query_id)
            if record is None:
                return
        record = _patched(record, progress, state)
        if record.state in FINAL_QUERY_STATES:
            # The store is ahead of the notifications: the query became READY
            # while this outcome waited in the queue (a fast fan-out). The
            # record holds every outcome, not just this one: publish it as a
            # whole snapshot (no changed bank), so that the API converts and
            # sends it whole, not as one changed outcome.
            event = QueryEvent(record, None)
        else:
            self.snapshots[query_id] = record
            event = QueryEvent(record, progress.bank_code)
        for queue in list(self.watchers.get(query_id, ())):
            queue.put_nowait(event)

    async def watch(self, query_id: str) -> AsyncIterator[QueryEvent]:
        """A snapshot, then one event per bank outcome becoming final, until
        READY. Raises KeyError (on first iteration) for an unknown query,
        and later if the query is erased (issue 22)."""
        queue: asyncio.Queue[QueryEvent | None] = asyncio.Queue()
        self.watchers.setdefault(query_id, set()).add(queue)
        try:
            record = await self._store.get(query_id)
            if record is None:
                raise KeyError(query_id)
            if record.state not in FINAL_QUERY_STATES:
                # The record later outcomes patch (it holds every outcome
                # committed before it; later ones come as notifications).
                # Without it the first outcome re-reads the query, and with
                # a group commit that read often finds it READY already,
                # folding every bank's change into one whole-record event.
                self.snapshots.setdefault(query_id, record)
            yield QueryEvent(record, None)
            if record.state in FINAL_QUERY_STATES:
                return
            seen = {b.bank_code for b in record.banks if b.state != BankState.PENDING}
            while True:
                event = await queue.get()
                if event is None:  # issue 22: erased with its user's account
                    raise KeyError(query_id)
                if event.changed_bank_code in seen:
                    if event.query.state not in FINAL_QUERY_STATES:
                        continue  # already in the snapshot
                    # The final record still comes, but names no bank this
                    # watcher has already seen change.
                    event = QueryEvent(event.query, None)
                if event.changed_bank_code is not None:
                    seen.add(event.changed_bank_code)
                yield event
                if event.query.state in FINAL_QUERY_STATES:
                    return
        finally:
            queues = self.watchers.get(query_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self.watchers[query_id]
                    self.snapshots.pop(query_id, None)
                    self.held.pop(query_id, None)  # issue 17: the last watcher left


def _patched(record: QueryRecord, progress: BankProgress, state: QueryState) -> QueryRecord:
    """`record` with one bank's final outcome and the query state it implies."""
    banks = tuple(
        progress if b.bank_code == progress.bank_code and b.state == BankState.PENDING else b for b in record.banks
    )
    if _STATE_ORDER[state] <= _STATE_ORDER[record.state] or state in FINAL_QUERY_STATES:
        state = record.state  # READY comes only from the store, with its ready and expiry times
    return dataclasses.replace(record, banks=banks, state=state)
