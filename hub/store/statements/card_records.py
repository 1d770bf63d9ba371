"""SQL of hub.store.card_records: opting in or out of card tracking
(`card_tracking`) and each opted-in READY query's sealed card fingerprints
(`card_records`), of which the newest KEEP_RECORDS stay."""

from __future__ import annotations

from hub.store.sql import check_named

COLUMNS = "user_id, query_id, ready_time, wrapped_key, ciphertext"
PUT = (
    f"INSERT INTO card_records ({COLUMNS}) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, query_id) DO UPDATE SET ready_time = excluded.ready_time,"
    " wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext"
)
GET = f"SELECT {COLUMNS} FROM card_records WHERE user_id = ? AND query_id = ?"
PREVIOUS = (
    f"SELECT {COLUMNS} FROM card_records WHERE user_id = ? AND ready_time < ?"
    " ORDER BY ready_time DESC, query_id DESC LIMIT 1"
)
ALL_FOR = f"SELECT {COLUMNS} FROM card_records WHERE user_id = ? ORDER BY ready_time"

SET_TRACKING = (
    "INSERT INTO card_tracking (user_id, enabled, update_time) SELECT ?, ?, ? WHERE EXISTS (SELECT 1"
    " FROM users WHERE user_id = ?) ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled,"
    " update_time = excluded.update_time"
)
DELETE_ALL = "DELETE FROM card_records WHERE user_id = ?"
TRACKING = "SELECT enabled FROM card_tracking WHERE user_id = ?"
KEEP_NEWEST = (
    "DELETE FROM card_records WHERE user_id = ? AND query_id NOT IN (SELECT query_id FROM card_records"
    " WHERE user_id = ? ORDER BY ready_time DESC, query_id DESC LIMIT ?)"
)

check_named(globals())
