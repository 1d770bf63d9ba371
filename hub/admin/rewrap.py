"""Moving stored data keys onto the current key-encryption key (issue 24):
the admin service's Rewrap, one batch per call (`cardlookup-admin rewrap`
loops until nothing is left).

A KEK rotation keeps the previous KEK listed (a file in
keys.previous_key_encryption_keys, or a token object in [hsm]
previous_key_encryption_key_labels) so that what it sealed still opens;
re-wrapping moves each data key under the current KEK (same data key, same
ciphertext), after which no stored item names the previous key and it can
be removed from the configuration (docs/operations.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag

from hub.core.logging import get_logger
from hub.identity.new_cards import record_context
from hub.identity.users import _context as user_context
from hub.identity.users import _key_context as user_key_context
from hub.keys.crypto import Envelope, KekUnknown, wrapped_key_prefix
from hub.reports.contexts import answer_context, report_context, subject_context
from hub.store.db import Database
from hub.store.rewrap import RewrapStore, WrappedColumn

log = get_logger("hub.admin")

DEFAULT_BATCH, MAX_BATCH = 500, 5000

CONTEXTS = {
    "users": lambda k: user_context(k[0]),
    "user_data_keys": lambda k: user_key_context(k[0]),
    "queries": lambda k: subject_context(k[0]),
    "bank_tasks": lambda k: answer_context(k[0], k[1]),
    "reports": lambda k: report_context(k[0]),
    "card_records": lambda k: record_context(k[1]),
}
"""Each column's associated data (as its sealer binds it) from the row's keys."""


@dataclass
class RewrapResult:
    rewrapped: int
    current_key_id: str
    remaining: Counter[str] = field(default_factory=Counter)
    unknown: int = 0
    unreadable: int = 0
    """Rows this batch could not open (no configured key's tag matches)."""


async def rewrap_batch(db: Database, envelope: Envelope, batch_size: int) -> RewrapResult:
    """Re-wraps up to `batch_size` items under a previous KEK (or under no
    key id) onto the current one; counts what is left."""
    limit = min(batch_size or DEFAULT_BATCH, MAX_BATCH)
    store = RewrapStore(db)
    unreadable = 0

    def move(column: WrappedColumn, keys: tuple[str, ...], wrapped: bytes) -> bytes | None:
        nonlocal unreadable
        try:
            return envelope.rewrap(wrapped, CONTEXTS[column.table](keys))
        except (InvalidTag, KekUnknown):
            unreadable += 1  # left as it is; counted in `remaining`
            return None

    previous = [wrapped_key_prefix(kid) for kid in envelope.previous_key_ids]
    moved = await store.rewrap_batch(previous, limit, move)
    left = await store.remaining(envelope.key_prefix)
    known = {"", *envelope.previous_key_ids}
    unknown = sum(n for kid, n in left.items() if kid not in known)
    result = RewrapResult(moved, envelope.key_id, left, unknown, unreadable)
    log.info(
        "rewrap_batch",
        rewrapped=moved,
        remaining=sum(left.values()),
        unknown=result.unknown,
        unreadable=unreadable,
        current_key_id=envelope.key_id,
    )
    for kid in sorted(set(left) - known):
        log.error("kek_unknown", problem=f"KEK_UNKNOWN:{kid}", items=left[kid], key_id=kid)
    return result
