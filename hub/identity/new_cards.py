"""New cards since the last lookup (issue 12, opt-in at CreateQuery).

The comparison needs a record that outlives the report: reports are deleted
after 7 days (R11) and the next lookup is allowed only 7 days after the last
report (R12). The record keeps no card data: only keyed fingerprints
HMAC-SHA256(per-user key, bank code + card_ref), and the set is sealed to the
user's payment-password key (hub.keys.user_sealing), so operators can neither read
nor link it.

- CreateQuery with track_new_cards: tracking on (before the query is stored,
  so the READY hook sees it); without: tracking off and every record deleted
  (after the query is accepted, so a refused request deletes nothing).
- READY (the engine's report hook, with the report in memory): if tracking
  is on and the user has a key, the report's fingerprints are sealed and
  stored as this query's record (the newest two are kept).
- GetReport (the password has derived the user's key): the report's cards
  are compared with the record of the lookup before it; cards whose
  fingerprint is not there are marked new. Nothing is stored at read time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable

from cryptography.exceptions import InvalidTag

from cardlookup.clock import Clock
from hub.core.domain import Report
from hub.core.logging import get_logger
from hub.identity import validation
from hub.keys.crypto import KeyedHash, Sealed, card_fingerprint
from hub.keys.user_sealing import NotUserSealed, is_hpke_sealed, seal_to
from hub.reports.report import decode_report
from hub.store.card_records import CardRecord, CardRecordStore
from hub.store.user_keys import UserKeyStore

log = get_logger("hub.new_cards")

Opener = Callable[[Sealed, bytes], bytes]
Sealer = Callable[[str, bytes, bytes], Awaitable[Sealed | None]]


def record_context(query_id: str) -> bytes:
    return b"cards:" + query_id.encode()


class NewCardTracker:
    def __init__(self, store: CardRecordStore, keys: UserKeyStore, keyed_hash: KeyedHash, clock: Clock) -> None:
        self._store = store
        self._keys = keys
        self._hash = keyed_hash
        self._clock = clock

    def _fingerprint(self, user_id: str, bank_code: str, card_ref: str) -> str:
        return card_fingerprint(self._hash, user_id, bank_code, card_ref)

    async def set_preference(self, user_id: str, enabled: bool) -> None:
        """Off deletes the user's records. Only for an enrolled user with a
        key (the records are sealed to it): others are ignored."""
        validation.app_id(user_id, "user_id")
        if await self._keys.get(user_id) is None:
            return
        await self._store.set_tracking(user_id, enabled, self._clock.now())

    async def on_ready(self, user_id: str, report: Report) -> None:
        if not await self._store.tracking(user_id):
            return
        key = await self._keys.get(user_id)
        if key is None:
            return
        prints = sorted({self._fingerprint(user_id, c.bank_code, c.card_ref) for c in report.cards if c.card_ref})
        plaintext = json.dumps({"f": prints}, separators=(",", ":")).encode()
        sealed = seal_to(key.public_key, key.epoch, plaintext, record_context(report.query_id))
        await self._store.put(CardRecord(user_id, report.query_id, report.generate_time, sealed))
        log.info("card_record_stored", query_id=report.query_id)

    def recording(self, sealer: Sealer) -> Sealer:
        """The engine's report hook: records the fingerprints (while the
        report is in memory), then seals the report with `sealer`."""

        async def seal(user_id: str, plaintext: bytes, context: bytes) -> Sealed | None:
            try:
                await self.on_ready(user_id, decode_report(plaintext))
            except Exception:
                # The record is an extra: its failure must not hold the report back.
                log.error("card_record_failed", exc_info=True)
            return await sealer(user_id, plaintext, context)

        return seal

    async def previous_record(self, user_id: str, query_id: str) -> bytes | None:
        """Issue 17: the bundle of the record before this lookup's, for the
        device to compare (it holds the key): None without one."""
        if not await self._store.tracking(user_id):
            return None
        record = await self._store.get(user_id, query_id)
        if record is None:
            return None
        previous = await self._store.previous(user_id, record.ready_time)
        return previous.sealed.ciphertext if previous is not None and is_hpke_sealed(previous.sealed) else None

    async def annotate(self, user_id: str, report: Report, opener: Opener) -> Report:
        """The report with its new cards marked, when this lookup has a record
        and an earlier one exists that the user's key opens."""
        if not await self._store.tracking(user_id):
            return report
        record = await self._store.get(user_id, report.query_id)
        if record is None:
            return report
        previous = await self._store.previous(user_id, record.ready_time)
        if previous is None:
            return report
        try:
            known = set(json.loads(opener(previous.sealed, record_context(previous.query_id)))["f"])
        except (InvalidTag, NotUserSealed, ValueError, KeyError):
            return report  # sealed before a password reset: no comparison
        cards = tuple(
            dataclasses.replace(
                card, new_since_last_lookup=self._fingerprint(user_id, card.bank_code, card.card_ref) not in known
            )
            for card in report.cards
        )
        return dataclasses.replace(report, cards=cards, new_cards_marked=True)
