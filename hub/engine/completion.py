"""Completing a query: when its last bank is final (its pending count
reached 0 in the commit of that outcome, hub.engine.batches) the report is
built, sealed and stored, and the subject and per-bank answers are deleted
in the same write; then the ready listeners (the SMS, R9) run once across
replicas.

The report is sealed to the owner on arrival of its answers (hub.reports.sealing,
issue 17); a user without any key (enrolled before issue 12) gets a report
built here and sealed by the API's report sealer (to the payment-password
key, issue 12) or else under the hub's envelope. `read_report` opens either.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from cardlookup.clock import Clock
from hub.core.config import HubConfig
from hub.core.domain import BankProgress, QueryRecord, QueryState, Report, ReportUnavailable
from hub.core.logging import get_logger
from hub.engine.batches import OutcomeWriter
from hub.keys.crypto import HubKeys, Sealed
from hub.keys.user_sealing import is_user_sealed
from hub.reports.contexts import answer_context, report_context
from hub.reports.report import BankOutcome, build_report, decode_answer, decode_report, encode_report
from hub.reports.sealing import AnswerSealer
from hub.store.queries import QueryStore
from hub.telemetry import tracing

ReadyListener = Callable[[QueryRecord], Awaitable[None]]
ReportSealer = Callable[[str, bytes, bytes], Awaitable[Sealed | None]]
"""(user id, encoded report, associated data) -> the report sealed to the
user (hub.identity.report_keys), or None to keep the hub's envelope."""
ReportOpener = Callable[[Sealed, bytes], bytes]
"""(a report sealed to its user, associated data) -> the encoded report."""
log = get_logger("hub.engine")


class Completion:
    def __init__(
        self,
        config: Callable[[], HubConfig],
        keys: HubKeys,
        clock: Clock,
        wall: Callable[[], int],
        store: QueryStore,
        sealer: AnswerSealer,
        writer: OutcomeWriter,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        lease_s: float,
    ) -> None:
        """`config`: the current configuration (a reload replaces it)."""
        self._config = config
        self._keys = keys
        self._clock = clock
        self._wall = wall
        self._store = store
        self._sealer = sealer
        self._writer = writer
        self._spawn = spawn
        self._lease_s = lease_s
        self.listeners: list[ReadyListener] = []
        self.report_sealer: ReportSealer | None = None

    @tracing.traced_query("query.ready")
    async def complete(self, query_id: str) -> None:
        """Builds, seals and stores the report of a query whose every bank is final."""
        rows = await self._store.answers(query_id)
        now = self._clock.now()
        expire = now + self._config().timings.report_retention
        sealed_report = await self._sealer.seal_report(query_id, rows, now, expire)
        if sealed_report is not None:
            card_count = sum(p.card_count for p, _ in rows)
        else:
            sealed_report, card_count = await self._legacy_report(query_id, rows, now, expire)
        completed = await self._writer.stored(lambda: self._store.complete(query_id, sealed_report, now, expire))
        if completed:
            log.info("query_ready", query_id=query_id, cards=card_count, banks=len(rows))
            self._spawn(self.notify(query_id))

    async def _legacy_report(
        self, query_id: str, rows: list[tuple[BankProgress, Sealed | None]], now: dt.datetime, expire: dt.datetime
    ) -> tuple[Sealed, int]:
        """A user without any key (enrolled before issue 12): the report is
        built here and sealed by the API's sealer or the envelope."""
        outcomes = []
        for progress, sealed in rows:
            answer = None
            if sealed is not None:
                plaintext = self._keys.envelope.open(sealed, answer_context(query_id, progress.bank_code))
                answer = decode_answer(progress.bank_code, plaintext)
            outcomes.append(BankOutcome(progress, answer))
        report = build_report(query_id, now, expire, outcomes)
        return await self._seal_report(query_id, encode_report(report)), len(report.cards)

    async def _seal_report(self, query_id: str, plaintext: bytes) -> Sealed:
        """Sealed to the user when the sealer can (the hub-sealed answers are
        deleted with the same commit, so no hub-readable copy remains);
        else under the hub's envelope."""
        if self.report_sealer is not None:
            record = await self._store.get(query_id)
            if record is not None:
                sealed = await self.report_sealer(record.user_id, plaintext, report_context(query_id))
                if sealed is not None:
                    return sealed
        return self._keys.envelope.seal(plaintext, report_context(query_id))

    async def notify(self, query_id: str) -> None:
        """Runs the ready listeners (the SMS, R9) once per query across
        replicas: only the replica that claims the notice sends it."""
        now = self._wall()
        # Not one bank lease: a send can outlast a short lease (a slow
        # gateway, or the outbox write queued behind argon2 hashes), and
        # another replica claiming it meanwhile would send it again.
        claim_s = max(self._lease_s, self._config().timings.notice_claim.total_seconds())
        if not await self._store.claim_notice(query_id, now, now + int(claim_s * 1e6)):
            return
        record = await self._store.get(query_id)
        if record is None or record.state != QueryState.READY:
            return
        for listener in list(self.listeners):
            try:
                await listener(record)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("ready_listener_failed", exc_info=True, query_id=query_id)
                await self._store.release_notice(query_id)  # retried by the next lease round
                return
        await self._store.mark_notified(query_id)

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
                    return decode_report(opener(sealed, report_context(query_id)))
                return decode_report(self._keys.envelope.open(sealed, report_context(query_id)))
        raise ReportUnavailable(record.state, record.report_expire_time)
