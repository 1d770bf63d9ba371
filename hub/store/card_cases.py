"""The "not my card" cases opened from reports (issue 12).

Tables (component "card_cases", its own migration list):
  card_cases  one row per (query, card of its report) flagged by the user:
              the bank, what was asked, the bank's case reference, status
              and next step, and when. No card digits and no card_ref: the
              report (sealed to the user) is the only place those live.

Rows stay with the query's history (they outlive the report, R11).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from hub.store.db import Conn, Database, Row, from_micros, to_micros
from hub.store.statements import card_cases as sql

COMPONENT = "card_cases"
MIGRATIONS = [
    """
    CREATE TABLE card_cases (
        query_id TEXT NOT NULL,
        card_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        bank_code TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        case_reference TEXT NOT NULL,
        next_step TEXT NOT NULL,
        next_step_english TEXT NOT NULL,
        open_time INTEGER NOT NULL,
        PRIMARY KEY (query_id, card_id)
    )
    """,
]


@dataclass(frozen=True)
class CardCase:
    query_id: str
    card_id: str
    user_id: str
    bank_code: str
    kind: str
    """NOT_RECOGNISED or CLOSE_REQUESTED."""
    status: str
    """RECEIVED, CARD_SUSPENDED (the bank's) or VISIT_BANK (no case service)."""
    case_reference: str
    next_step: str
    next_step_english: str
    open_time: dt.datetime


def _case(r: Row) -> CardCase:
    return CardCase(
        query_id=str(r["query_id"]),
        card_id=str(r["card_id"]),
        user_id=str(r["user_id"]),
        bank_code=str(r["bank_code"]),
        kind=str(r["kind"]),
        status=str(r["status"]),
        case_reference=str(r["case_reference"]),
        next_step=str(r["next_step"]),
        next_step_english=str(r["next_step_english"]),
        open_time=from_micros(r["open_time"]),
    )


class CardCaseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def get(self, query_id: str, card_id: str) -> CardCase | None:
        r = await self._db.fetch_one(sql.GET, (query_id, card_id))
        return _case(r) if r else None

    async def add(self, case: CardCase) -> CardCase:
        """Records the case; if one exists for this card already (a
        concurrent flag), the first one stays and is returned."""

        async def run(conn: Conn) -> None:
            await conn.execute(
                sql.ADD,
                (
                    case.query_id,
                    case.card_id,
                    case.user_id,
                    case.bank_code,
                    case.kind,
                    case.status,
                    case.case_reference,
                    case.next_step,
                    case.next_step_english,
                    to_micros(case.open_time),
                ),
            )

        await self._db.write(run)
        stored = await self.get(case.query_id, case.card_id)
        assert stored is not None
        return stored

    async def for_queries(self, query_ids: Sequence[str]) -> dict[str, list[CardCase]]:
        out: dict[str, list[CardCase]] = {q: [] for q in query_ids}
        if not query_ids:
            return out
        marks = ",".join("?" * len(query_ids))
        rows = await self._db.fetch_all(
            sql.FOR_QUERIES.format(marks=marks),
            list(query_ids),
        )
        for r in rows:
            out[str(r["query_id"])].append(_case(r))
        return out
