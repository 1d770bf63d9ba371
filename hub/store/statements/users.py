"""SQL of hub.store.users: the `users` table (one row per enrolled user:
keyed ID-number hash, sealed identity record, payment-password hash and
its lockout state). `GET` + `conn.for_update` locks the row first."""

from __future__ import annotations

from hub.store.sql import check_named

GET = "SELECT * FROM users WHERE user_id = ?"
BY_ID_HASH = "SELECT user_id FROM users WHERE id_hash = ?"
PUT = (
    "INSERT INTO users (user_id, id_hash, identity_wrapped_key, identity_ciphertext, masked_phone,"
    " region_code, id_expiry, password_hash, password_failures, password_locked_until, create_time,"
    " update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
    " id_hash = excluded.id_hash, identity_wrapped_key = excluded.identity_wrapped_key,"
    " identity_ciphertext = excluded.identity_ciphertext, masked_phone = excluded.masked_phone,"
    " region_code = excluded.region_code, id_expiry = excluded.id_expiry, password_hash ="
    " excluded.password_hash, password_failures = excluded.password_failures, password_locked_until ="
    " excluded.password_locked_until, update_time = excluded.update_time"
)
REHASH = "UPDATE users SET password_hash = ? WHERE user_id = ? AND password_hash = ?"
PASSWORD_STATE = "SELECT password_failures, password_locked_until FROM users WHERE user_id = ?"
SET_PASSWORD_STATE = "UPDATE users SET password_failures = ?, password_locked_until = ? WHERE user_id = ?"

check_named(globals())
