"""An example data source over SQLite (SQLITE_SCHEMA): the R13 conditions
are derived at the time the query was first seen, so the answer to a retry
does not change when an ID document expires in between."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path
from typing import Self

from bank_kit.records import Card, Customer, SourceUnavailable

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id_number  TEXT PRIMARY KEY,
    full_name  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cards (
    number           TEXT PRIMARY KEY,
    id_number        TEXT NOT NULL REFERENCES customers(id_number),
    kind             TEXT NOT NULL CHECK (kind IN ('debit', 'credit')),
    phone_on_file    INTEGER NOT NULL DEFAULT 1,
    card_not_present INTEGER NOT NULL DEFAULT 1,  -- 非柜面 self-service enabled
    id_expires       TEXT,             -- ISO date the ID document on file for the card expires; NULL: none
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'lost', 'closed')),
    opened           INTEGER NOT NULL DEFAULT 0    -- the listing order
);
CREATE TABLE IF NOT EXISTS queries (
    query_id   TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL    -- the time every answer to this query is computed at
);
"""


class SqliteRecords:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(SQLITE_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=5, isolation_level=None, check_same_thread=False)

    def find(self, id_number: str, query_id: str, now: dt.datetime) -> Customer | None:
        try:
            with self._lock, self._connect() as db:
                db.execute(
                    "INSERT INTO queries (query_id, first_seen) VALUES (?, ?) ON CONFLICT (query_id) DO NOTHING",
                    (query_id, now.isoformat()),
                )
                (first_seen,) = db.execute("SELECT first_seen FROM queries WHERE query_id = ?", (query_id,)).fetchone()
                person = db.execute("SELECT full_name FROM customers WHERE id_number = ?", (id_number,)).fetchone()
                if person is None:
                    return None
                rows = db.execute(
                    "SELECT number, kind, phone_on_file, card_not_present, id_expires FROM cards"
                    " WHERE id_number = ? AND status <> 'closed' ORDER BY opened, number",
                    (id_number,),
                ).fetchall()
        except sqlite3.Error:
            raise SourceUnavailable("RECORDS_UNAVAILABLE") from None
        at = dt.datetime.fromisoformat(first_seen).date()
        cards = []
        for number, kind, phone, cnp, id_expires in rows:
            expired = id_expires is not None and dt.date.fromisoformat(id_expires) < at
            conditions = {"ID_DOCUMENT_EXPIRED"} if expired else set()
            conditions |= set() if phone else {"NO_PHONE_ON_FILE"}
            conditions |= set() if cnp else {"CARD_NOT_PRESENT_DISABLED"}
            cards.append(Card(number, kind, frozenset(conditions)))
        return Customer(person[0], tuple(cards))

    @classmethod
    def open(cls, location: str) -> Self:
        return cls(Path(location))

    @classmethod
    def example(cls, customers_json: Path, workdir: Path) -> Self:
        """An SQLite copy of a JSON records file."""
        records = cls(workdir / "records.sqlite")
        raw = json.loads(Path(customers_json).read_text(encoding="utf-8"))
        with records._connect() as db:
            for id_number, c in raw["customers"].items():
                db.execute("INSERT INTO customers VALUES (?, ?)", (id_number, c["full_name"]))
                for order, k in enumerate(c["cards"]):
                    conditions = set(k.get("conditions", ()))
                    db.execute(
                        "INSERT INTO cards VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            k["number"],
                            id_number,
                            k["kind"],
                            "NO_PHONE_ON_FILE" not in conditions,
                            "CARD_NOT_PRESENT_DISABLED" not in conditions,
                            "2000-01-01" if "ID_DOCUMENT_EXPIRED" in conditions else None,
                            k.get("status", "active"),
                            order,
                        ),
                    )
        return records
