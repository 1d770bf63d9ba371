"""The named statements of the queries concern (hub.store.queries: the
queries, bank_tasks and reports tables; hub.store.batches: the group commit
of the fan-out's outcomes). Each is written once in the SQL both engines
share, with `?` placeholders; `PG_` statements are PostgreSQL's one-round-
trip forms of a transaction the SQLite path runs statement by statement.
Every statement is translated once at import (hub.store.sql.check_named).
"""

from __future__ import annotations

from hub.core.domain import BankState, QueryState
from hub.store.sql import check_named

_PENDING = BankState.PENDING.value
_ACCEPTED = QueryState.ACCEPTED.value
_RUNNING = QueryState.RUNNING.value

PROGRESS = "cardlookup_progress"
"""The notification channel of bank outcomes and READY queries."""
WORK = "cardlookup_work"
"""The notification channel of new queries (their id): the lane owners
pick up the tasks of their banks."""

MIGRATIONS = [
    """
    CREATE TABLE queries (
        query_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        state TEXT NOT NULL,
        bank_codes TEXT NOT NULL,
        consent_text_version TEXT NOT NULL,
        create_time INTEGER NOT NULL,
        report_due_time INTEGER NOT NULL,
        ready_time INTEGER,
        report_expire_time INTEGER,
        subject_key BLOB,
        subject_ciphertext BLOB,
        notified INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX queries_by_user ON queries (user_id, create_time, query_id);
    CREATE INDEX queries_by_state ON queries (state);
    CREATE TABLE bank_tasks (
        query_id TEXT NOT NULL REFERENCES queries (query_id),
        bank_code TEXT NOT NULL,
        position INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        attempt_count INTEGER NOT NULL DEFAULT 0,
        card_count INTEGER NOT NULL DEFAULT 0,
        finish_time INTEGER,
        answer_key BLOB,
        answer_ciphertext BLOB,
        PRIMARY KEY (query_id, bank_code)
    );
    CREATE TABLE reports (
        query_id TEXT PRIMARY KEY REFERENCES queries (query_id),
        data_key BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        generate_time INTEGER NOT NULL,
        expire_time INTEGER NOT NULL
    )
    """,
    """
    ALTER TABLE bank_tasks ADD COLUMN lease_owner TEXT;
    ALTER TABLE bank_tasks ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE bank_tasks ADD COLUMN lease_expires INTEGER;
    CREATE INDEX bank_tasks_pending ON bank_tasks (lease_expires) WHERE state = 'PENDING';
    CREATE INDEX bank_tasks_by_owner ON bank_tasks (lease_owner) WHERE state = 'PENDING';
    ALTER TABLE queries ADD COLUMN notify_expires INTEGER
    """,
    # Bank lanes (issue 16): a task is worked by the owner of its bank's lane
    # (hub.store.lanes), not leased one by one; the query counts its pending
    # banks itself, moved by the group commit (hub.store.batches).
    """
    ALTER TABLE queries ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
    UPDATE queries SET pending = (SELECT COUNT(*) FROM bank_tasks t
        WHERE t.query_id = queries.query_id AND t.state = 'PENDING');
    DROP INDEX bank_tasks_pending;
    DROP INDEX bank_tasks_by_owner;
    CREATE INDEX bank_tasks_pending_by_bank ON bank_tasks (bank_code) WHERE state = 'PENDING'
    """,
]


# -- queries -----------------------------------------------------------------

INSERT_QUERY = (
    "INSERT INTO queries (query_id, user_id, state, bank_codes, consent_text_version,"
    " create_time, report_due_time, subject_key, subject_ciphertext, pending)"
    " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (query_id) DO NOTHING"
)
INSERT_TASKS = "INSERT INTO bank_tasks (query_id, bank_code, position, state) VALUES (?,?,?,?)"
PG_INSERT = (
    f"WITH q AS ({INSERT_QUERY} RETURNING query_id), t AS (INSERT INTO bank_tasks"
    " (query_id, bank_code, position, state) SELECT q.query_id, b.code, b.n - 1, 'PENDING'"
    " FROM q, unnest(?::text[]) WITH ORDINALITY AS b (code, n))"
    f" SELECT pg_notify('{WORK}', query_id) FROM q"
)
"""The query, its tasks and its WORK announcement in one statement
(data-modifying CTEs run to completion; nothing is written on a conflict)."""

PENDING_TASKS = (
    "SELECT t.query_id, t.bank_code, t.attempt_count, t.reason, q.create_time, q.report_due_time,"
    " q.consent_text_version, q.subject_key, q.subject_ciphertext"
    " FROM bank_tasks t JOIN queries q ON q.query_id = t.query_id WHERE t.state = ?"
)
"""A lane owner's pickup; the caller adds the bank (and query) filter and
`PENDING_TASKS_ORDER`."""
PENDING_TASKS_ORDER = " ORDER BY t.query_id, t.position"

COMPLETE = (
    "UPDATE queries SET state = ?, ready_time = ?, report_expire_time = ?, subject_key = NULL,"
    " subject_ciphertext = NULL WHERE query_id = ? AND state IN (?, ?)"
)
INSERT_REPORT = "INSERT INTO reports (query_id, data_key, ciphertext, generate_time, expire_time) VALUES (?,?,?,?,?)"
DROP_ANSWERS = "UPDATE bank_tasks SET answer_key = NULL, answer_ciphertext = NULL WHERE query_id = ?"
PG_COMPLETE = (
    "WITH q AS (UPDATE queries SET state = ?, ready_time = ?, report_expire_time = ?, subject_key = NULL,"
    " subject_ciphertext = NULL WHERE query_id = ? AND state IN (?, ?) RETURNING query_id),"
    " r AS (INSERT INTO reports (query_id, data_key, ciphertext, generate_time, expire_time)"
    " SELECT query_id, ?::bytea, ?::bytea, ?::bigint, ?::bigint FROM q),"
    " b AS (UPDATE bank_tasks SET answer_key = NULL, answer_ciphertext = NULL"
    " WHERE query_id IN (SELECT query_id FROM q))"
    " SELECT pg_notify(?, ?) FROM q"
)

EXPIRE_DUE = "UPDATE queries SET state = ? WHERE state = ? AND report_expire_time <= ? RETURNING query_id"
DELETE_REPORT = "DELETE FROM reports WHERE query_id = ?"
CLAIM_NOTICE = (
    "UPDATE queries SET notified = 2, notify_expires = ? WHERE query_id = ? AND state = ?"
    " AND (notified = 0 OR (notified = 2 AND notify_expires < ?)) RETURNING query_id"
)
MARK_NOTIFIED = "UPDATE queries SET notified = 1 WHERE query_id = ?"
RELEASE_NOTICE = "UPDATE queries SET notified = 0 WHERE query_id = ? AND notified = 2"

GET = "SELECT * FROM queries WHERE query_id = ?"
LIST_FOR_USER = "SELECT * FROM queries WHERE user_id = ? ORDER BY create_time DESC, query_id DESC LIMIT ?"
LIST_FOR_USER_BEFORE = (
    "SELECT * FROM queries WHERE user_id = ? AND (create_time < ? OR (create_time = ? AND query_id < ?))"
    " ORDER BY create_time DESC, query_id DESC LIMIT ?"
)
LATEST_READY_TIME = "SELECT MAX(ready_time) FROM queries WHERE user_id = ? AND ready_time IS NOT NULL"
UNFINISHED_FOR_USER = "SELECT * FROM queries WHERE user_id = ? AND state IN (?, ?) ORDER BY create_time DESC LIMIT 1"
READY_UNNOTIFIED = (
    "SELECT query_id FROM queries WHERE state = ? AND (notified = 0 OR (notified = 2 AND notify_expires < ?))"
    " ORDER BY ready_time"
)
ORPHANED = (
    "SELECT q.query_id FROM queries q WHERE q.state IN (?, ?) AND NOT EXISTS"
    " (SELECT 1 FROM bank_tasks t WHERE t.query_id = q.query_id AND (t.state = ? OR t.finish_time >= ?))"
)
SUBJECT = "SELECT subject_key, subject_ciphertext FROM queries WHERE query_id = ?"
ANSWERS = "SELECT * FROM bank_tasks WHERE query_id = ? ORDER BY position"
REPORT = "SELECT data_key, ciphertext FROM reports WHERE query_id = ?"
TASKS_OF = "SELECT * FROM bank_tasks WHERE query_id IN ({marks}) ORDER BY query_id, position"
"""The bank tasks of several queries: `{marks}` is one `?` per query id."""

# -- gauges (hub.telemetry.metrics) ----------------------------------------------------

COUNT_BY_STATE = "SELECT state, COUNT(*) AS n FROM queries GROUP BY state"
OLDEST_REPORT = "SELECT MIN(generate_time) AS oldest FROM reports"
OLDEST_UNFINISHED = f"SELECT MIN(create_time) AS oldest FROM queries WHERE state IN ('{_ACCEPTED}', '{_RUNNING}')"

# -- group commit (hub.store.batches) ------------------------------------------

PG_OUTCOMES = f"""
WITH locked AS MATERIALIZED (
    SELECT query_id FROM queries WHERE query_id = ANY(?::text[]) ORDER BY query_id FOR UPDATE
), u AS (
    SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::bigint[], ?::bigint[],
                         ?::bigint[], ?::bytea[], ?::bytea[])
        AS u (query_id, bank_code, epoch, state, reason, attempt_count, card_count, finish_time, answer_key,
              answer_ciphertext)
), done AS (
    UPDATE bank_tasks t SET state = u.state, reason = u.reason, attempt_count = u.attempt_count,
        card_count = u.card_count, finish_time = u.finish_time, answer_key = u.answer_key,
        answer_ciphertext = u.answer_ciphertext, lease_owner = l.owner, lease_epoch = u.epoch, lease_expires = NULL
    FROM u, lanes l
    WHERE t.query_id = u.query_id AND t.bank_code = u.bank_code AND t.state = '{_PENDING}'
        AND l.bank_code = u.bank_code AND l.owner = ? AND l.epoch = u.epoch
        AND t.query_id IN (SELECT query_id FROM locked)
    RETURNING t.query_id, t.bank_code, t.lease_epoch, t.state, t.reason, t.attempt_count, t.card_count, t.finish_time
), counts AS (
    UPDATE queries q SET pending = q.pending - d.n,
        state = CASE WHEN q.state = '{_ACCEPTED}' THEN '{_RUNNING}' ELSE q.state END
    FROM (SELECT query_id, COUNT(*) AS n FROM done GROUP BY query_id) d
    WHERE q.query_id = d.query_id
    RETURNING q.query_id, q.pending
), announced AS (
    SELECT d.*, c.pending + ROW_NUMBER() OVER (PARTITION BY d.query_id ORDER BY d.bank_code DESC) - 1 AS after
    FROM done d JOIN counts c ON c.query_id = d.query_id
)
SELECT query_id, bank_code, lease_epoch, after,
    pg_notify('{PROGRESS}', json_build_array(query_id, bank_code, state, reason, attempt_count, card_count,
        finish_time, after)::text)
FROM announced ORDER BY query_id, after DESC
"""
"""One statement: data-modifying CTEs run to completion whether read or
not, and the announcement of each outcome is built by the database from
the row it wrote (the payload is Progress.encode's, checked by a test)."""

PG_FAILURES = f"""
UPDATE bank_tasks t SET reason = COALESCE(u.reason, t.reason),
    attempt_count = GREATEST(t.attempt_count, u.attempt_count)
FROM unnest(?::text[], ?::text[], ?::bigint[], ?::text[], ?::bigint[])
    AS u (query_id, bank_code, epoch, reason, attempt_count), lanes l
WHERE t.query_id = u.query_id AND t.bank_code = u.bank_code AND t.state = '{_PENDING}'
    AND l.bank_code = u.bank_code AND l.owner = ? AND l.epoch = u.epoch
"""

FENCE = "SELECT 1 FROM lanes WHERE bank_code = ? AND owner = ? AND epoch = ?"
FINISH_TASK = (
    "UPDATE bank_tasks SET state = ?, reason = ?, attempt_count = ?, card_count = ?, finish_time = ?,"
    " answer_key = ?, answer_ciphertext = ?, lease_owner = ?, lease_epoch = ?, lease_expires = NULL"
    " WHERE query_id = ? AND bank_code = ? AND state = ?"
)
COUNT_OUTCOME = (
    "UPDATE queries SET pending = pending - 1, state = CASE WHEN state = ? THEN ? ELSE state END"
    " WHERE query_id = ? RETURNING pending"
)
RECORD_FAILURE = (
    "UPDATE bank_tasks SET reason = COALESCE(?, reason), attempt_count = MAX(attempt_count, ?)"
    " WHERE query_id = ? AND bank_code = ? AND state = ?"
)

check_named(globals())
