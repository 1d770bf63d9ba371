"""Sealing to the user on arrival (issue 17): what the engine owns so that
no copy of a bank's answer the hub could open is ever written.

`AnswerSealer.seal_answer` runs the moment a bank's answer is validated,
before the outcome enters a write: the answer (masked cards, R13 counts and
each card's keyed fingerprint) is sealed with HPKE (cardlookup.sealed_report)
to the user's report key — the device key the app registered
(hub.store.device_keys), else the payment-password key of issue 12
(hub.keys.user_sealing) — with the query id and bank code bound in `info`; when
the user tracks new cards, the answer's fingerprints are sealed as a second
message (the new-card record's part). `seal_report` runs at READY: it seals
a summary (the banks' outcomes, which the hub knows anyway, and the
report's times) and bundles it with the sealed answers; the record's parts
go to hub.store.card_records. Neither step can open what it bundles.

At rest every such item is a `hub.keys.crypto.Sealed` whose wrapped_key is the
7-byte header  b"H1" || kind (b"D" device, b"P" password) || epoch (u32 BE)
and whose ciphertext is a cardlookup.sealed_report bundle.

A user with no key at all (enrolled before issue 12 and not since) keeps
the engine's legacy envelope: `seal_answer` returns None.

Cache: `_cache` maps a query to (user id, tracking) so that a query's n
answers read the owner once. The key itself is read fresh for every answer:
a key replaced while a query runs is used from the next answer on. Reads
are grouped per user (`FreshReads`): each answer waits for a read that
started after it asked, and the answers that ask while one read is in
flight share the next one (one statement for a burst of a query's answers
instead of one per answer; issue 16's CPU target). The cache holds no
secret, is bounded (`_CACHE_SIZE`, oldest out first) and is cleared per
query by `forget`, which the engine calls when the query's last call on
this replica ends and at READY.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cardlookup import sealed_report as sr
from hub.core.domain import BankProgress
from hub.core.logging import get_logger
from hub.fanout.validation import BankAnswer
from hub.keys.crypto import HubKeys, Sealed, card_fingerprint
from hub.keys.user_sealing import DEVICE, PASSWORD, hpke_header, is_hpke_sealed
from hub.reports.contexts import answer_context
from hub.reports.report import decode_answer
from hub.store.card_records import COMPONENT as RECORDS
from hub.store.card_records import MIGRATIONS as RECORD_MIGRATIONS
from hub.store.card_records import CardRecord, CardRecordStore
from hub.store.db import Database
from hub.store.device_keys import DeviceKeyStore
from hub.store.user_keys import COMPONENT as USER_KEYS
from hub.store.user_keys import MIGRATIONS as USER_KEY_MIGRATIONS

_CACHE_SIZE = 4096
log = get_logger("hub.reports.sealing")
K = TypeVar("K")
V = TypeVar("V")


class FreshReads(Generic[K, V]):
    """`get(key)` returns the result of a `read(key)` that started after the
    call: never an older read's. Calls for one key that arrive while its
    read is in flight wait for the next read and share it, so a burst of n
    calls costs two reads at most, and each still sees every write that
    committed before it asked."""

    def __init__(self, read: Callable[[K], Awaitable[V]]) -> None:
        self._read = read
        self._next: dict[K, asyncio.Future[V]] = {}
        """Per key: the read the callers waiting now will share (not started)."""
        self._running: dict[K, asyncio.Task[None]] = {}

    async def get(self, key: K) -> V:
        future = self._next.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._next[key] = future
            if key not in self._running:
                self._running[key] = asyncio.get_running_loop().create_task(self._reads(key))
        # A caller cancelled (its bank task stopped) must not cancel the others' read.
        return await asyncio.shield(future)

    async def _reads(self, key: K) -> None:
        try:
            while (future := self._next.pop(key, None)) is not None:
                try:
                    value = await self._read(key)
                except Exception as error:
                    future.set_exception(error)
                    future.exception()  # retrieved: each waiter re-raises it (and retries)
                else:
                    future.set_result(value)
        finally:
            del self._running[key]


@dataclass(frozen=True)
class SealingKey:
    kind: bytes
    epoch: int
    public_key: bytes

    def header(self) -> bytes:
        return hpke_header(self.kind, self.epoch)


class AnswerSealer:
    def __init__(self, db: Database, keys: HubKeys) -> None:
        self._db = db
        self._keys = keys
        self._devices = DeviceKeyStore(db)
        self._records = CardRecordStore(db)
        self._cache: OrderedDict[str, tuple[str, bool]] = OrderedDict()
        self._keys_of: FreshReads[str, SealingKey | None] = FreshReads(self.key_for)
        self._owners: FreshReads[str, tuple[str, bool] | None] = FreshReads(self._owner)

    async def migrate(self) -> None:
        """The tables it reads exist even on an engine-only hub."""
        await self._db.migrate(USER_KEYS, USER_KEY_MIGRATIONS)
        await self._db.migrate(RECORDS, RECORD_MIGRATIONS)
        await self._devices.migrate()

    async def key_for(self, user_id: str) -> SealingKey | None:
        """The device's key if registered, else the payment password's."""
        device, password = await self._devices.sealing_keys(user_id)
        if device is not None:
            return SealingKey(DEVICE, device.epoch, device.public_key)
        if password is not None:
            return SealingKey(PASSWORD, password[0], password[1])
        return None

    async def _target(self, query_id: str) -> tuple[str, SealingKey | None, bool] | None:
        """(user id, key, tracking): the owner and tracking choice cached per
        query (neither changes while it runs), the key read each time."""
        hit = self._cache.get(query_id)
        if hit is not None:
            self._cache.move_to_end(query_id)
            user_id, tracking = hit
        else:
            owner = await self._owners.get(query_id)
            if owner is None:
                return None
            user_id, tracking = owner
            self._cache[query_id] = owner
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return user_id, await self._keys_of.get(user_id), tracking

    async def _owner(self, query_id: str) -> tuple[str, bool] | None:
        owner = await self._devices.query_user(query_id)
        if owner is None:
            return None
        return owner, await self._records.tracking(owner)

    def forget(self, query_id: str) -> None:
        self._cache.pop(query_id, None)

    def _seal_parts(self, query_id: str, user_id: str, key: SealingKey, tracking: bool, answer: BankAnswer) -> Sealed:
        bank = answer.bank_code
        rows = [
            [
                c.kind,
                c.first_four,
                c.last_four,
                c.number_length,
                c.card_ref,
                card_fingerprint(self._keys.keyed_hash, user_id, bank, c.card_ref),
            ]
            for c in answer.cards
        ]
        entries = [(sr.info(sr.ANSWER, query_id, bank), sr.answer_plaintext(rows, answer.unlisted))]
        if tracking:
            prints = sorted({str(r[5]) for r in rows if r[4]})
            entries.append((sr.info(sr.CARDS, query_id, bank), json.dumps({"f": prints}).encode()))
        bundle = sr.encode_bundle((i, sr.seal(key.public_key, p, i)) for i, p in entries)
        return Sealed(key.header(), bundle)

    async def seal_answer(self, query_id: str, answer: BankAnswer) -> Sealed | None:
        """The answer sealed to its user; None for a user without any key."""
        target = await self._target(query_id)
        if target is None or target[1] is None:
            return None
        user_id, key, tracking = target[0], target[1], target[2]
        return self._seal_parts(query_id, user_id, key, tracking, answer)

    async def seal_report(
        self,
        query_id: str,
        answers: Sequence[tuple[BankProgress, Sealed | None]],
        generate_time: dt.datetime,
        expire_time: dt.datetime,
    ) -> Sealed | None:
        """READY: the summary sealed and bundled with the sealed answers (an
        answer the legacy envelope sealed, e.g. across an upgrade, is opened
        and sealed to the user first); the new-card record stored when the
        user tracks. None when the user has no key (legacy report)."""
        target = await self._target(query_id)
        self.forget(query_id)
        if target is None or target[1] is None:
            return None
        user_id, key, tracking = target[0], target[1], target[2]
        report_entries: list[tuple[bytes, bytes]] = []
        record_entries: list[tuple[bytes, bytes]] = []
        for progress, sealed in answers:
            if sealed is None:
                continue
            if not is_hpke_sealed(sealed):
                plaintext = self._keys.envelope.open(sealed, answer_context(query_id, progress.bank_code))
                answer = decode_answer(progress.bank_code, plaintext)
                sealed = self._seal_parts(query_id, user_id, key, tracking, answer)
            for entry_info, message in sr.decode_bundle(sealed.ciphertext):
                (record_entries if entry_info.split(b"\x00")[1] == sr.CARDS.encode() else report_entries).append(
                    (entry_info, message)
                )
        summary = {
            "query_id": query_id,
            "generate_time": generate_time.isoformat(),
            "expire_time": expire_time.isoformat(),
            "banks": [[p.bank_code, p.state.value, p.reason] for p, _ in answers],
        }
        summary_info = sr.info(sr.SUMMARY, query_id)
        message = sr.seal(key.public_key, json.dumps(summary, separators=(",", ":")).encode(), summary_info)
        if tracking:
            record = Sealed(key.header(), sr.encode_bundle(record_entries))
            try:
                await self._records.put(CardRecord(user_id, query_id, generate_time, record))
            except Exception:
                # The record is an extra: its failure must not hold the report back.
                log.error("card_record_failed", exc_info=True, user_id=user_id, query_id=query_id)
        return Sealed(key.header(), sr.encode_bundle([(summary_info, message), *report_entries]))
