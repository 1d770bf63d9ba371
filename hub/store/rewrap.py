"""Where the hub keeps data keys wrapped by a key-encryption key, and the
statements that move them onto the current KEK (issue 24, `cardlookup-admin
rewrap`).

A wrapped key of hub.keys.crypto.Envelope is `0x01 | len | key id | nonce |
ciphertext`, or 60 bytes without an id (sealed before key ids existed).
User-sealed items (hub.keys.user_sealing: `U1…`, `H1…`) and the marker
`user-data-key/1` never have either shape, so they are never touched.

Each column is read and written in place: only the wrapped key changes, the
item's ciphertext stays. An update is compare-and-set (`WHERE column = the
value read`), so a row re-sealed, re-wrapped by another replica, or deleted
meanwhile is left as it is: safe while the hub serves and to re-run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hub.keys.crypto import LEGACY_WRAPPED_LENGTH, WRAPPED_VERSION
from hub.store.db import Conn, Database, WriteFn

_VERSION = bytes([WRAPPED_VERSION])


@dataclass(frozen=True)
class WrappedColumn:
    """One column of wrapped data keys: its table, the columns naming a row,
    and what the row's context (associated data) is built from."""

    table: str
    keys: tuple[str, ...]
    column: str


COLUMNS = (
    WrappedColumn("users", ("user_id",), "identity_wrapped_key"),
    WrappedColumn("user_data_keys", ("user_id",), "wrapped_key"),
    WrappedColumn("queries", ("query_id",), "subject_key"),
    WrappedColumn("bank_tasks", ("query_id", "bank_code"), "answer_key"),
    WrappedColumn("reports", ("query_id",), "data_key"),
    WrappedColumn("card_records", ("user_id", "query_id"), "wrapped_key"),
)


def _not_current(c: WrappedColumn, current_prefix: bytes) -> tuple[str, list[object]]:
    """Rows whose wrapped key is the envelope's but not under the current KEK."""
    return (
        f"{c.column} IS NOT NULL AND (length({c.column}) = ?"
        f" OR (substr({c.column}, 1, 1) = ? AND substr({c.column}, 1, ?) <> ?))",
        [LEGACY_WRAPPED_LENGTH, _VERSION, len(current_prefix), current_prefix],
    )


def _movable(c: WrappedColumn, previous_prefixes: Sequence[bytes]) -> tuple[str, list[object]]:
    """Rows the hub can move: no key id, or a configured previous key's id."""
    ors, params = [f"length({c.column}) = ?"], list[object]([LEGACY_WRAPPED_LENGTH])
    for prefix in previous_prefixes:
        ors.append(f"substr({c.column}, 1, ?) = ?")
        params += [len(prefix), prefix]
    return f"{c.column} IS NOT NULL AND ({' OR '.join(ors)})", params


def key_id_of(wrapped: bytes) -> str:
    """The key id in a wrapped key, "" for one without an id: the counting
    side of hub.keys.crypto.Envelope.key_id_of, which refuses a malformed
    one; a count must not (the row is what an operator needs to see)."""
    if len(wrapped) == LEGACY_WRAPPED_LENGTH:
        return ""
    return wrapped[2 : 2 + wrapped[1]].decode(errors="replace")


class RewrapStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def remaining(self, current_prefix: bytes) -> Counter[str]:
        """Wrapped keys not under the current KEK, by key id ("" = no id)."""
        left: Counter[str] = Counter()
        for c in COLUMNS:
            where, params = _not_current(c, current_prefix)
            sql = f"SELECT substr({c.column}, 1, 257) AS k FROM {c.table} WHERE {where}"
            rows = await self._db.fetch_all(sql, params)
            left.update(key_id_of(bytes(r["k"])) for r in rows)
        return left

    async def rewrap_batch(
        self,
        previous_prefixes: Sequence[bytes],
        limit: int,
        rewrap: Callable[[WrappedColumn, tuple[str, ...], bytes], bytes | None],
    ) -> int:
        """Re-wraps up to `limit` movable wrapped keys with `rewrap(column,
        row keys, wrapped) -> new wrapped` (None: leave the row, e.g. no key
        opens it). Returns how many rows changed."""
        moved = 0
        for c in COLUMNS:
            if moved >= limit:
                break
            where, params = _movable(c, previous_prefixes)
            names = ", ".join(c.keys)
            rows = await self._db.fetch_all(
                f"SELECT {names}, {c.column} AS w FROM {c.table} WHERE {where} LIMIT ?", [*params, limit - moved]
            )
            updates: list[tuple[object, ...]] = []
            for r in rows:
                keys = tuple(str(r[k]) for k in c.keys)
                old = bytes(r["w"])
                new = rewrap(c, keys, old)
                if new is not None:
                    updates.append((new, *keys, old))
            if updates:
                moved += await self._db.write(_updater(c, updates))
        return moved


def _updater(c: WrappedColumn, updates: list[tuple[object, ...]]) -> WriteFn[int]:
    match = " AND ".join(f"{k} = ?" for k in c.keys)
    sql = f"UPDATE {c.table} SET {c.column} = ? WHERE {match} AND {c.column} = ?"

    async def run(conn: Conn) -> int:
        changed = 0
        for params in updates:
            changed += max(await conn.execute(sql, params), 0)
        return changed

    return run
