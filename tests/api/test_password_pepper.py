"""Issue 17 item 3: the payment-password hash is no offline oracle. argon2id
runs over a keyed digest of the password (the hub's index key): a copy of
the database alone confirms no password; a hash made before the pepper is
re-hashed with it at the next correct password."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import argon2
import pytest
from argon2.exceptions import VerifyMismatchError

from hub.identity.passwords import PEPPERED
from hub.keys.crypto import HubKeys
from tests.api.helpers import HubHarness

BANKS = ["102", "103"]


def _stored_hash(database: Path, user_id: str) -> str:
    conn = sqlite3.connect(database)
    try:
        ((value,),) = conn.execute("SELECT password_hash FROM users WHERE user_id = ?", (user_id,))
        return str(value)
    finally:
        conn.close()


async def test_the_database_alone_confirms_no_password(harness: HubHarness) -> None:
    hub = harness
    person = hub.eligible(0)
    await hub.enrol(person)
    stored = _stored_hash(Path(hub.server.config.database), person.user_id)
    assert stored.startswith(PEPPERED)
    argon = argon2.PasswordHasher()
    # The thief's oracle: argon2 over the true password does not verify.
    with pytest.raises(VerifyMismatchError):
        argon.verify(stored.removeprefix(PEPPERED), person.payment_password)
    # The hub, with its key, does.
    keys = HubKeys.load(hub.server.config)
    assert argon.verify(
        stored.removeprefix(PEPPERED), keys.keyed_hash.digest(person.payment_password, "payment_password_pepper")
    )


async def test_a_hash_made_before_the_pepper_is_rehashed_at_the_next_correct_password(harness: HubHarness) -> None:
    hub = harness
    person = hub.eligible(1)
    await hub.enrol(person)
    qid = (await hub.ready_query(person, BANKS)).query_id
    database = Path(hub.server.config.database)
    legacy = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash(person.payment_password)
    conn = sqlite3.connect(database)
    try:
        conn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (legacy, person.user_id))
        conn.commit()
    finally:
        conn.close()
    await hub.client.get_report(person.user_id, qid, person.payment_password)  # the legacy hash still opens
    assert _stored_hash(database, person.user_id).startswith(PEPPERED)
    await hub.client.get_report(person.user_id, qid, person.payment_password)  # and the new one too
