"""SQL of hub.store.user_keys: the payment-password key (`user_keys`) and
the re-sealing of a user's stored ciphertexts (reports, answers, card
records) when that key changes, each only while still the old one."""

from __future__ import annotations

from hub.store.sql import check_named

PUT = (
    "INSERT INTO user_keys (user_id, epoch, public_key, salt, update_time) VALUES (?, ?, ?, ?, ?) ON"
    " CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, public_key = excluded.public_key, salt ="
    " excluded.salt, update_time = excluded.update_time"
)
GET = "SELECT user_id, epoch, public_key, salt FROM user_keys WHERE user_id = ?"
UPDATE_TIME = "SELECT update_time FROM user_keys WHERE user_id = ?"
EPOCH = "SELECT epoch FROM user_keys WHERE user_id = ?"
REPORT = "SELECT data_key, ciphertext FROM reports WHERE query_id = ?"
LIVE_REPORTS = (
    "SELECT r.query_id, r.data_key, r.ciphertext FROM reports r JOIN queries q ON q.query_id ="
    " r.query_id WHERE q.user_id = ? AND r.expire_time > ? ORDER BY r.query_id"
)
CARD_RECORDS = "SELECT query_id, wrapped_key, ciphertext FROM card_records WHERE user_id = ? ORDER BY query_id"
SEALED_ANSWERS = (
    "SELECT b.query_id, b.bank_code, b.answer_key, b.answer_ciphertext FROM bank_tasks b JOIN queries q"
    " ON q.query_id = b.query_id WHERE q.user_id = ? AND b.answer_key IS NOT NULL ORDER BY b.query_id,"
    " b.bank_code"
)
SET_PASSWORD = (
    "UPDATE users SET password_hash = ?, password_failures = 0, password_locked_until = NULL,"
    " update_time = ? WHERE user_id = ?"
)
RESEAL_REPORT = "UPDATE reports SET data_key = ?, ciphertext = ? WHERE query_id = ? AND data_key = ?"
RESEAL_ANSWER = (
    "UPDATE bank_tasks SET answer_key = ?, answer_ciphertext = ? WHERE query_id = ? AND bank_code = ?"
    " AND answer_key = ? AND answer_ciphertext = ?"
)
RESEAL_CARD_RECORD = (
    "UPDATE card_records SET wrapped_key = ?, ciphertext = ? WHERE user_id = ? AND query_id = ? AND wrapped_key = ?"
)

check_named(globals())
