"""Issue 9 item 6: files holding secrets or personal data are 0600 from the
first byte: created so by the call that creates them, under any umask."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardlookup.pki import create_dev_pki
from cardlookup.private_files import ensure_private, open_private_append, write_private
from hub.core.notify import OutboxSmsSender, SmsMessage
from hub.store.db import open_database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: anything not private by its open() shows."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_the_helpers_create_0600_and_tighten_existing_files(tmp_path: Path, open_umask: None) -> None:
    write_private(tmp_path / "a.key", b"secret")
    with open_private_append(tmp_path / "b.jsonl") as f:
        f.write("x\n")
    ensure_private(tmp_path / "c.db")
    loose = tmp_path / "d.db"
    loose.write_bytes(b"")
    loose.chmod(0o644)
    ensure_private(loose)
    for name in ("a.key", "b.jsonl", "c.db", "d.db"):
        assert mode(tmp_path / name) == 0o600, name
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_generated_private_keys_are_0600(tmp_path: Path, open_umask: None) -> None:
    pki = create_dev_pki(tmp_path / "pki", ["102"])
    for key in (
        pki.ca_key,
        pki.key("hub-server"),
        pki.bank_key("102"),
        pki.consent_signing_key,
        pki.face_provider_key,
        pki.key_encryption_key,
        pki.index_key,
    ):
        assert mode(key) == 0o600, key


async def test_database_wal_and_shm_are_0600(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "data" / "hub.db"
    db = await open_database(path)
    try:
        await db.execute("CREATE TABLE t (v INTEGER)")
        await db.execute("INSERT INTO t (v) VALUES (1)")
        for suffix in ("", "-wal", "-shm"):
            assert mode(Path(f"{path}{suffix}")) == 0o600, suffix
    finally:
        await db.close()
    db = await open_database(path)  # reopening keeps the data and the modes
    try:
        row = await db.fetch_one("SELECT v FROM t")
        assert row is not None and row[0] == 1
        assert mode(Path(f"{path}-wal")) == 0o600
    finally:
        await db.close()


async def test_sms_outbox_is_0600(tmp_path: Path, open_umask: None) -> None:
    sender = OutboxSmsSender(tmp_path / "out" / "sms.jsonl")
    await sender.send(SmsMessage("13812345678", "REPORT_READY", "text", dt.datetime.now(dt.UTC)))
    await asyncio.sleep(0)
    assert mode(tmp_path / "out" / "sms.jsonl") == 0o600
