"""Portable SQL: the store's SQL is written once (SQLite syntax that is also
PostgreSQL syntax) and translated here for PostgreSQL. Only two things differ:

- placeholders: `?` (positional, in order) becomes `$1, $2, ...`;
- column types in migrations: BLOB -> BYTEA, INTEGER -> BIGINT (instants are
  microseconds since the epoch, beyond 32 bits), and an
  `INTEGER PRIMARY KEY AUTOINCREMENT` key -> `BIGSERIAL PRIMARY KEY`.

Both rewrites touch code only: the text is split into code, string literals
('...'), quoted identifiers ("...") and comments (`-- ...`, `/* ... */`)
first, so a `?` or the word INTEGER inside a literal or a comment stays as
written, and a migration script is split on the `;` of its code only.
Whether a statement returns rows is never guessed: the caller says it
(`Conn.execute` / `fetch_one` / `fetch_all` / `fetch_val`, hub.store.types).

What the translation cannot carry is refused with `SqlError` when the
statement is first translated (every named statement is checked when its
module is imported, `check_named`): an unterminated literal, quoted
identifier or comment, and a `$` in code (a PostgreSQL `$1` placeholder or
a dollar-quoted string: the store writes `?`). A `?` in code is always a
placeholder, so store SQL uses no PostgreSQL jsonb `?` operator.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

_TOKENS = re.compile(
    r"""(?P<literal>'(?:[^']|'')*')
    |(?P<ident>"(?:[^"]|"")*")
    |(?P<comment>--[^\n]*|/\*.*?\*/)
    |(?P<open>['"]|/\*)""",
    re.DOTALL | re.VERBOSE,
)
_AUTOINCREMENT = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.IGNORECASE)
_INTEGER = re.compile(r"\bINTEGER\b", re.IGNORECASE)
_BLOB = re.compile(r"\bBLOB\b", re.IGNORECASE)


class SqlError(ValueError):
    """Store SQL the PostgreSQL translation cannot carry."""


def segments(sql: str) -> list[tuple[bool, str]]:
    """`sql` as (is_code, text) pieces: code, and the literals, quoted
    identifiers and comments between it, in order."""
    out: list[tuple[bool, str]] = []
    at = 0
    for match in _TOKENS.finditer(sql):
        if match.lastgroup == "open":
            raise SqlError(f"unterminated {match.group()!r} at offset {match.start()}: {_head(sql)}")
        if match.start() > at:
            out.append((True, sql[at : match.start()]))
        out.append((False, match.group()))
        at = match.end()
    if at < len(sql):
        out.append((True, sql[at:]))
    for is_code, text in out:
        if is_code and "$" in text:
            raise SqlError(f"'$' in store SQL (write '?' placeholders, no dollar quotes): {_head(sql)}")
    return out


def _head(sql: str) -> str:
    return " ".join(sql.split())[:80]


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """A statement with `?` placeholders, numbered for PostgreSQL."""
    counter = iter(range(1, 100_000))
    return "".join(
        re.sub(r"\?", lambda _m: f"${next(counter)}", text) if is_code else text for is_code, text in segments(sql)
    )


def ddl_to_postgres(statement: str) -> str:
    """A migration statement with PostgreSQL column types."""

    def types(code: str) -> str:
        code = _AUTOINCREMENT.sub("BIGSERIAL PRIMARY KEY", code)
        return _BLOB.sub("BYTEA", _INTEGER.sub("BIGINT", code))

    return "".join(types(text) if is_code else text for is_code, text in segments(statement))


def split_sql(script: str) -> list[str]:
    """A migration script's statements: split on the `;` of its code (not
    one inside a literal or a comment); a piece with no code (only
    comments) is no statement."""
    statements: list[str] = []
    current: list[str] = []
    has_code = False

    def flush() -> None:
        if has_code:
            statements.append("".join(current).strip())

    for is_code, text in segments(script):
        if not is_code:
            current.append(text)
            continue
        parts = text.split(";")
        for i, part in enumerate(parts):
            if i:
                flush()
                current, has_code = [], False
            current.append(part)
            has_code = has_code or bool(part.strip())
    flush()
    return statements


def check_named(namespace: Mapping[str, object]) -> None:
    """Translates every named statement of a module (its upper-case string
    constants; a tuple of strings is a set of statements, a list of strings
    a list of migration scripts) once, so SQL the translation cannot carry
    fails at import."""
    for name, value in namespace.items():
        if not name.isupper() or name.startswith("_"):
            continue
        try:
            if isinstance(value, str):
                to_postgres(value)
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                for statement in value:
                    to_postgres(statement)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                for script in value:
                    for statement in split_sql(script):
                        to_postgres(ddl_to_postgres(statement))
        except SqlError as error:
            raise SqlError(f"{name}: {error}") from None
