"""The privacy scans' view of PostgreSQL (tests.stores.stored_bytes) holds
what the running test wrote, in its tables and in the write-ahead log, even
a row deleted since."""

from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg
import pytest

from tests import stores


@pytest.mark.parametrize("store_backend", ["postgresql"], indirect=True)
async def test_the_scan_holds_a_kept_and_a_deleted_row_of_this_test(store_backend: str, tmp_path: Path) -> None:
    kept, deleted = f"kept-{secrets.token_hex(8)}", f"deleted-{secrets.token_hex(8)}"
    assert stores.current is not None
    conn = await asyncpg.connect(stores.current)
    try:
        await conn.execute("CREATE TABLE notes (body TEXT)")
        await conn.execute("INSERT INTO notes VALUES ($1), ($2)", kept, deleted)
        await conn.execute("DELETE FROM notes WHERE body = $1", deleted)
        await conn.execute("VACUUM FULL notes")  # the deleted row's page is rewritten away
    finally:
        await conn.close()
    stored = await stores.stored_bytes(tmp_path)
    assert kept.encode() in stored
    assert deleted.encode() in stored  # still in the write-ahead log
