"""SQL of hub.store.identity: SMS verifications (rate limits, codes,
attempts), CreateQuery request records, report access events and READY
notices."""

from __future__ import annotations

from hub.store.sql import check_named

LATEST_CODE = (
    "SELECT MAX(create_time) AS latest FROM verifications WHERE user_id = ? OR person_hash = ? OR phone_hash = ?"
)
CODES_TO_PHONE_SINCE = (
    "SELECT create_time FROM verifications WHERE phone_hash = ? AND create_time > ? ORDER BY create_time"
)
INSERT_VERIFICATION = (
    "INSERT INTO verifications (verification_id, user_id, code_hash, create_time, expire_time,"
    " person_hash, phone_hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
GET_VERIFICATION = (
    "SELECT verification_id, user_id, expire_time, failed_attempts, used_time FROM verifications WHERE"
    " verification_id = ?"
)
VERIFICATION_OF_USER = "SELECT * FROM verifications WHERE verification_id = ? AND user_id = ?"
COUNT_FAILED_ATTEMPT = "UPDATE verifications SET failed_attempts = ? WHERE verification_id = ?"
USE_CODE = "UPDATE verifications SET used_time = ? WHERE verification_id = ?"
INSERT_REQUEST = (
    "INSERT INTO query_requests (user_id, request_id, fingerprint, query_id, create_time) VALUES (?, ?, ?, ?, ?)"
)
GET_REQUEST = "SELECT fingerprint, query_id FROM query_requests WHERE user_id = ? AND request_id = ?"
INSERT_ACCESS_EVENT = "INSERT INTO report_access_events (query_id, time, result) VALUES (?, ?, ?)"
NOTICE_SENT = "SELECT 1 FROM ready_notices WHERE query_id = ?"
INSERT_NOTICE = "INSERT INTO ready_notices (query_id, send_time) VALUES (?, ?) ON CONFLICT (query_id) DO NOTHING"

ACCESS_EVENTS = "SELECT query_id, time, result FROM report_access_events WHERE query_id IN ({marks}) ORDER BY seq"
"""`{marks}`: one `?` per query id."""

check_named(globals())
