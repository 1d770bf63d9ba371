"""Portable SQL: the store's SQL is written once (SQLite syntax that is also
PostgreSQL syntax) and translated here for PostgreSQL. Only two things differ:

- placeholders: `?` (positional, in order) becomes `$1, $2, ...`;
- column types in migrations: BLOB -> BYTEA, INTEGER -> BIGINT (instants are
  microseconds since the epoch, beyond 32 bits), and an
  `INTEGER PRIMARY KEY AUTOINCREMENT` key -> `BIGSERIAL PRIMARY KEY`.

Store SQL therefore holds no `?` inside string literals and uses only
syntax both engines share (`ON CONFLICT ... DO NOTHING/UPDATE`, `RETURNING`).
"""

from __future__ import annotations

import functools
import re

_PLACEHOLDER = re.compile(r"\?")
_AUTOINCREMENT = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.IGNORECASE)
_INTEGER = re.compile(r"\bINTEGER\b", re.IGNORECASE)
_BLOB = re.compile(r"\bBLOB\b", re.IGNORECASE)
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """A statement with `?` placeholders, numbered for PostgreSQL."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


def ddl_to_postgres(statement: str) -> str:
    """A migration statement with PostgreSQL column types."""
    statement = _AUTOINCREMENT.sub("BIGSERIAL PRIMARY KEY", statement)
    statement = _INTEGER.sub("BIGINT", statement)
    return _BLOB.sub("BYTEA", statement)


@functools.lru_cache(maxsize=1024)
def returns_rows(sql: str) -> bool:
    """Whether a statement yields rows (a query, or DML with RETURNING)."""
    return bool(_RETURNS_ROWS.search(sql))
