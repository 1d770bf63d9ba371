"""docs/data-inventory.md lists every column the hub's store creates, with
its class and fate, and nothing else (issue 22): a new table or column fails
here until the inventory says what it holds and how it goes. The schema is
the one every store module's migrations build (each module of hub.store
with a MIGRATIONS list), on a fresh SQLite file."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import hub.store
from hub.store.sqlite import SqliteDatabase

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "data-inventory.md").read_text(encoding="utf-8")
CLASSES = {"sealed", "keyed", "user id", "masked", "none"}


def documented_columns() -> dict[str, tuple[str, str]]:
    """{"table.column": (class, fate)} from the inventory's column table."""
    section = DOC.split("## Columns", 1)[1]
    out: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            name, cls, fate = (c.strip() for c in line.strip().strip("|").split("|"))
            assert name.strip("`") not in out, f"{name} listed twice"
            out[name.strip("`")] = (cls, fate)
    return out


async def schema_columns(tmp_path: Path) -> set[str]:
    db = await SqliteDatabase.open(tmp_path / "inventory.db")
    try:
        for info in pkgutil.iter_modules(hub.store.__path__):
            module = importlib.import_module(f"hub.store.{info.name}")
            migrations = getattr(module, "MIGRATIONS", None)
            if migrations:
                await db.migrate(getattr(module, "COMPONENT", info.name), migrations)
        tables = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        columns: set[str] = set()
        for table in tables:
            for column in await db.fetch_all(f"PRAGMA table_info({table['name']})"):
                columns.add(f"{table['name']}.{column['name']}")
        return columns
    finally:
        await db.close()


async def test_the_inventory_lists_exactly_the_schemas_columns(tmp_path: Path) -> None:
    schema = await schema_columns(tmp_path)
    documented = documented_columns()
    assert len(schema) > 90  # every store module's tables were built
    missing = sorted(schema - set(documented))
    assert not missing, f"columns not in docs/data-inventory.md (say what they hold and how they go): {missing}"
    extra = sorted(set(documented) - schema)
    assert not extra, f"docs/data-inventory.md lists columns the schema does not have: {extra}"


def test_every_column_has_a_class_and_a_fate() -> None:
    for name, (cls, fate) in documented_columns().items():
        assert cls in CLASSES, name
        assert fate, name


def test_whatever_holds_a_user_id_goes_at_closure() -> None:
    """(The classes allow no plaintext name, ID number, phone or card
    number: those are sealed or keyed.)"""
    for name, (cls, fate) in documented_columns().items():
        if cls == "user id":
            assert "closure" in fate, name


def test_the_erasure_covers_every_table_with_a_user_id() -> None:
    from hub.store.erasure import ERASED_TABLES, USER_ID_TABLES

    with_user_id = {name.split(".")[0] for name, (cls, _) in documented_columns().items() if cls == "user id"}
    assert with_user_id == set(USER_ID_TABLES)
    assert set(USER_ID_TABLES) <= set(ERASED_TABLES)
