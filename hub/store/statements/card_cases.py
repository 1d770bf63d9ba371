"""SQL of hub.store.card_cases: one row per flagged card of a report
(bank, kind, the bank's case reference, status, next step)."""

from __future__ import annotations

from hub.store.sql import check_named

COLUMNS = "query_id, card_id, user_id, bank_code, kind, status, case_reference, next_step, next_step_english, open_time"
GET = f"SELECT {COLUMNS} FROM card_cases WHERE query_id = ? AND card_id = ?"
ADD = (
    f"INSERT INTO card_cases ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (query_id, card_id) DO NOTHING"
)
FOR_QUERIES = f"SELECT {COLUMNS} FROM card_cases WHERE query_id IN ({{marks}}) ORDER BY open_time, card_id"
"""`{marks}`: one `?` per query id."""

check_named(globals())
