"""SQL of hub.store.erasure: account closure (every row of one user, in
the writers' lock order), the `closed_accounts` and `user_data_keys`
tables, the retention sweep's deletes and PostgreSQL's table rewrite."""

from __future__ import annotations

from hub.store.sql import check_named

DATA_KEY = "SELECT wrapped_key, ciphertext FROM user_data_keys WHERE user_id = ?"
INSERT_DATA_KEY = (
    "INSERT INTO user_data_keys (user_id, wrapped_key, ciphertext, create_time) VALUES (?, ?, ?, ?) ON"
    " CONFLICT (user_id) DO NOTHING"
)
USER_ID_HASH = "SELECT id_hash FROM users WHERE user_id = ?"
QUERIES_OF_USER = "SELECT query_id, ready_time FROM queries WHERE user_id = ? ORDER BY query_id"
PENDING_QUERIES_OF_USER = (
    "SELECT DISTINCT query_id FROM bank_tasks WHERE state = ? AND query_id IN (SELECT query_id FROM"
    " queries WHERE user_id = ?)"
)
BLANK_VERIFICATIONS = "UPDATE verifications SET user_id = ?, code_hash = '' WHERE user_id = ?"
INSERT_CLOSED_ACCOUNT = (
    "INSERT INTO closed_accounts (person_key, lookup_count, last_ready_time, close_time, expire_time)"
    " VALUES (?, ?, ?, ?, ?)"
)
UNCOMPACTED = "SELECT COUNT(*), MAX(seq) FROM closed_accounts WHERE compacted = 0"
MARK_COMPACTED = "UPDATE closed_accounts SET compacted = 1 WHERE compacted = 0 AND seq <= ?"
LAST_READY_OF_PERSON = "SELECT MAX(last_ready_time) FROM closed_accounts WHERE person_key = ? AND expire_time > ?"
EXPIRED_QUERIES_BEFORE = "SELECT query_id FROM queries WHERE state = ? AND create_time < ?"
DELETE_EXPIRED_CLOSURES = "DELETE FROM closed_accounts WHERE expire_time <= ?"

_QUERY_TABLES = ("reports", "bank_tasks", "report_access_events", "ready_notices", "card_cases", "query_requests")
DELETE_QUERIES = (
    *(f"DELETE FROM {table} WHERE query_id IN ({{marks}})" for table in _QUERY_TABLES),
    "DELETE FROM queries WHERE query_id IN ({marks})",
)
"""A list of queries with everything hanging off them, children first;
`{marks}`: one `?` per query id."""
DELETE_USER_ROWS = (
    "DELETE FROM card_cases WHERE user_id = ?",
    "DELETE FROM query_requests WHERE user_id = ?",
    # Tracking first: a record being stored holds the tracking row (FOR
    # UPDATE) and is committed before this delete returns, so the next
    # statement sees and deletes it.
    "DELETE FROM card_tracking WHERE user_id = ?",
    "DELETE FROM card_records WHERE user_id = ?",
    "DELETE FROM user_keys WHERE user_id = ?",
    "DELETE FROM device_keys WHERE user_id = ?",
    "DELETE FROM user_data_keys WHERE user_id = ?",
    "DELETE FROM users WHERE user_id = ?",
)
"""A closed account's rows keyed by its user id (after its queries)."""

DELETE_ACCESS_EVENTS_BEFORE = "DELETE FROM report_access_events WHERE time < ?"
DELETE_CARD_CASES_BEFORE = "DELETE FROM card_cases WHERE open_time < ?"
DELETE_CARD_RECORDS_BEFORE = "DELETE FROM card_records WHERE ready_time < ?"
DELETE_ABUSE_COUNTERS_BEFORE = "DELETE FROM verifications WHERE create_time < ?"
DELETE_QUERY_REQUESTS_BEFORE = "DELETE FROM query_requests WHERE create_time < ?"
DELETE_ORPHANS = "DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = {table}.user_id)"
"""Rows of `{table}` whose user is gone (a request racing a closure)."""
ORPHAN_BEFORE = " AND create_time < ?"

USER_ID_TABLES = (
    "users",
    "user_data_keys",
    "user_keys",
    "device_keys",
    "queries",
    "query_requests",
    "verifications",
    "card_cases",
    "card_records",
    "card_tracking",
)
"""The tables with a user id column (the rest hold query ids)."""
VACUUM_FULL = "VACUUM FULL " + ", ".join(USER_ID_TABLES)
"""PostgreSQL: rewrites the tables that held the erased rows."""

check_named(globals())
