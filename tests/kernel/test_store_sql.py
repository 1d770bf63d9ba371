"""The translation of the store's portable SQL for PostgreSQL
(hub.store.sql): code only is rewritten; what it cannot carry is refused
with SqlError, and every named statement is translated when its module is
imported."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import hub.store
import hub.store.statements
from hub.store.sql import SqlError, check_named, ddl_to_postgres, segments, split_sql, to_postgres


def test_placeholders_are_numbered_in_code_only() -> None:
    assert to_postgres("SELECT a FROM t WHERE b = ? AND c = ?") == "SELECT a FROM t WHERE b = $1 AND c = $2"
    assert to_postgres("SELECT '?', b FROM t WHERE c = ?") == "SELECT '?', b FROM t WHERE c = $1"
    assert to_postgres("SELECT 'it''s ?' FROM t WHERE c = ?") == "SELECT 'it''s ?' FROM t WHERE c = $1"
    assert to_postgres('SELECT "odd?name" FROM t WHERE c = ?') == 'SELECT "odd?name" FROM t WHERE c = $1'
    assert to_postgres("-- why? because\nSELECT ? /* and ? here */, ?") == (
        "-- why? because\nSELECT $1 /* and ? here */, $2"
    )
    assert to_postgres("SELECT x FROM t WHERE y = ANY(?::text[])") == "SELECT x FROM t WHERE y = ANY($1::text[])"


def test_column_types_change_in_code_only() -> None:
    statement = (
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n integer, b BLOB,"
        " kind TEXT CHECK (kind IN ('INTEGER', 'BLOB'))) -- INTEGER stays here"
    )
    assert ddl_to_postgres(statement) == (
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT, b BYTEA,"
        " kind TEXT CHECK (kind IN ('INTEGER', 'BLOB'))) -- INTEGER stays here"
    )
    assert ddl_to_postgres('CREATE TABLE "INTEGER" (x INTEGER)') == 'CREATE TABLE "INTEGER" (x BIGINT)'


def test_scripts_split_on_code_semicolons() -> None:
    script = """-- first; a comment
    CREATE TABLE a (x TEXT DEFAULT ';');
    /* only a comment; */ ;
    INSERT INTO a VALUES ('b;c'); -- trailing; comment
    """
    assert split_sql(script) == [
        "-- first; a comment\n    CREATE TABLE a (x TEXT DEFAULT ';')",
        "INSERT INTO a VALUES ('b;c')",
    ]
    assert split_sql("  ;  ; -- nothing\n") == []


def test_returning_in_a_literal_is_just_text() -> None:
    """Nothing guesses from the text whether a statement returns rows (the
    caller picks fetch_one / fetch_all / execute): the word RETURNING in a
    literal is only translated around."""
    assert to_postgres("UPDATE t SET note = 'RETURNING ?' WHERE id = ?") == (
        "UPDATE t SET note = 'RETURNING ?' WHERE id = $1"
    )


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 'open", 'unterminated "\'"'),
        ('SELECT "open', "unterminated '\"'"),
        ("SELECT 1 /* open", "unterminated '/\\*'"),
        ("SELECT a FROM t WHERE b = $1", r"'\$' in store SQL"),
        ("SELECT $$?$$", r"'\$' in store SQL"),
    ],
)
def test_what_cannot_be_translated_is_refused(sql: str, message: str) -> None:
    with pytest.raises(SqlError, match=message):
        to_postgres(sql)
    with pytest.raises(SqlError, match=message):
        split_sql(sql)


def test_check_named_names_the_bad_statement() -> None:
    with pytest.raises(SqlError, match=r"^BROKEN: unterminated"):
        check_named({"GOOD": "SELECT ?", "BROKEN": "SELECT 'x", "lower": "SELECT 'ignored"})
    with pytest.raises(SqlError, match=r"^MIGRATIONS: unterminated"):
        check_named({"MIGRATIONS": ["CREATE TABLE a (x INTEGER); INSERT INTO a VALUES ('x)"]})


def test_segments_keep_every_character() -> None:
    sql = "SELECT 'a''b', \"c\" -- d\n/* e */ FROM t"
    pieces = segments(sql)
    assert "".join(text for _, text in pieces) == sql
    assert [text for is_code, text in pieces if not is_code] == ["'a''b'", '"c"', "-- d", "/* e */"]


def test_every_named_statement_and_migration_translates() -> None:
    """Each module of named statements checks itself at import; every store
    module's migrations translate too."""
    names = [m.name for m in pkgutil.iter_modules(hub.store.statements.__path__)]
    assert {"queries", "lanes", "users", "erasure"} <= set(names)
    for name in names:
        module = importlib.import_module(f"hub.store.statements.{name}")
        check_named(vars(module))
    migrated = 0
    for info in pkgutil.iter_modules(hub.store.__path__):
        module = importlib.import_module(f"hub.store.{info.name}")
        if isinstance(getattr(module, "MIGRATIONS", None), list):
            check_named({"MIGRATIONS": module.MIGRATIONS})
            migrated += 1
    assert migrated >= 8


_SQL = re.compile(r"\b(SELECT\s.*\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+(TABLE|INDEX))\b")


def test_no_sql_in_the_hub_outside_its_store() -> None:
    """Named SQL stays in hub/store/ (the metrics read the store's gauges
    through QueryStore, not with SQL of their own)."""
    root = Path(hub.store.__file__).parent.parent
    offenders = [
        f"{path.relative_to(root.parent)}:{n}"
        for path in sorted(root.rglob("*.py"))
        if "store" not in path.relative_to(root).parts[:1]
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if _SQL.search(line)
    ]
    assert offenders == []
