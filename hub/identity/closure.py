"""A user leaves (issue 22): account closure with erasure, and the retention
limits of everything the hub keeps past R11.

Closure (DeleteUser) is guarded by the payment password (R10): the app
backend has already signed the user in, but erasure cannot be undone, so
the hub asks for the same proof of the person that opens a report; a wrong
password counts towards the same lockout. A user who forgot the password
resets it by enrolling again (EnrollUser with a new password), then closes.

Under the person's CreateQuery lock (so no query of theirs can be accepted
half-way through), one transaction (hub.store.erasure) ends their running
query, erases every row of theirs and leaves only the keyed records the data
inventory (docs/security.md) names. The user's identity record was
encrypted under their own data key, which goes with the same commit
(crypto-shredding: a copy of the record in a WAL file, a backup or a replica
cannot be opened any more). The development SMS outbox, which holds phone
numbers, drops the user's messages too.

The retention sweep runs as a hub background task every `sweep_interval`,
on whichever replicas run (each sweep is one idempotent transaction).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from cardlookup.clock import Clock
from cardlookup.private_files import write_private
from hub.core.config import Timings
from hub.core.logging import get_logger
from hub.core.notify import outbox_lock
from hub.identity import validation
from hub.identity.errors import RuleViolation
from hub.identity.passwords import PasswordGate
from hub.identity.users import UserDirectory
from hub.store.erasure import Erased, ErasureStore, Retention, Swept
from hub.store.identity import IdentityStore

log = get_logger("hub.closure")


@dataclass(frozen=True)
class Closed:
    erased_query_count: int
    ended_query_count: int


def retention_of(timings: Timings) -> Retention:
    return Retention(
        lookup_history=timings.lookup_history_retention,
        access_events=timings.access_event_retention,
        card_cases=timings.card_case_retention,
        card_records=timings.card_record_retention,
        abuse_counters=timings.abuse_counter_retention,
        closure_records=timings.closure_record_retention,
    )


class AccountClosure:
    def __init__(
        self,
        *,
        timings: Timings,
        clock: Clock,
        users: UserDirectory,
        passwords: PasswordGate,
        identity_store: IdentityStore,
        store: ErasureStore,
        sms_outbox: Path | None = None,
    ) -> None:
        self._timings = timings
        self._clock = clock
        self._users = users
        self._passwords = passwords
        self._identity_store = identity_store
        self._store = store
        self._outbox = sms_outbox

    def reconfigure(self, timings: Timings) -> None:
        self._timings = timings

    async def close(self, user_id: str, password: str) -> Closed:
        validation.app_id(user_id, "user_id")
        validation.six_digits(password, "payment_password")
        row = await self._users.row(user_id)
        _, refusal = await self._passwords.check(user_id, row.password_hash, password)
        if refusal is not None:
            raise refusal
        phone = self._users.identity(row).phone
        async with self._identity_store.person_lock(row.id_hash):
            now = self._clock.now()
            erased: Erased | None = await self._store.erase_user(
                user_id, now, now + self._timings.closure_record_retention
            )
        if erased is None:  # closed by a concurrent request
            raise RuleViolation("USER_NOT_FOUND", "no such user is enrolled")
        await self._store.purge_copies()
        if self._outbox is not None:
            await asyncio.to_thread(prune_outbox, self._outbox, drop_phone=phone)
        log.info("account_closed", queries=erased.query_count, ended=len(erased.ended_query_ids))
        return Closed(erased.query_count, len(erased.ended_query_ids))

    async def closed_ready_time(self, person_key: str) -> dt.datetime | None:
        """R12 across a closure (hub.identity.journey's cooldown)."""
        return await self._store.closed_ready_time(person_key, self._clock.now())

    async def sweep(self) -> Swept:
        now = self._clock.now()
        swept = await self._store.sweep(now, retention_of(self._timings))
        # Rewrites the tables once after closures (PostgreSQL; see
        # ErasureStore.purge_copies): one compaction for many closures.
        compacted = await self._store.compact_after_closures()
        if compacted:
            swept.counts["compacted_closures"] = compacted
        if self._outbox is not None:
            dropped = await asyncio.to_thread(
                prune_outbox, self._outbox, before=now - self._timings.sms_outbox_retention
            )
            swept.counts["sms_outbox"] = dropped
        if swept.total:
            log.info("retention_swept", **{k: v for k, v in swept.counts.items() if v})
        return swept

    async def run_forever(self) -> None:
        """The hub's retention sweeper for what is kept past R11."""
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("retention_sweep_failed", exc_info=True)
            await asyncio.sleep(self._timings.sweep_interval.total_seconds())


def prune_outbox(path: Path, *, drop_phone: str = "", before: dt.datetime | None = None) -> int:
    """Rewrites the development SMS outbox without the messages to
    `drop_phone` and those sent before `before`; returns how many it
    dropped. The new file replaces the old one atomically (0600 from its
    first byte), under the outbox lock that every append takes too."""
    if not path.exists():
        return 0
    with outbox_lock(path):  # rewrites and appends take turns, across processes
        return _prune(path, drop_phone, before)


def _prune(path: Path, drop_phone: str, before: dt.datetime | None) -> int:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    cutoff = before.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if before is not None else ""
    kept: list[str] = []
    for line in lines:
        try:
            message = json.loads(line)
            gone = (drop_phone and message.get("phone") == drop_phone) or str(message.get("time", "")) < cutoff
        except (ValueError, AttributeError):
            gone = False
        if not gone:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        write_private(path, "".join(line + "\n" for line in kept).encode())
    return dropped
