"""Issue 12.1: a READY report opens with the user's payment password only.

Over the real API (mTLS hub, simulated banks): given the whole database and
every hub key file, a READY report cannot be opened, and with the password it
can; a password change keeps reports readable, a reset does not (and says
so)."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from cardlookup.hub.v1 import resources_pb2 as pb
from client.aio import AsyncCardLookupClient
from hub.identity.passwords import DEFAULT_PARAMETERS
from hub.keys.crypto import HubKeys, Sealed
from hub.keys.user_sealing import derive_private_key, is_user_sealed, open_with
from hub.reports.report import decode_report
from tests.api.helpers import HubHarness, refused
from tests.hub.helpers import expected_cards, report_cards, rich_person

BANKS = ["102", "103", "104", "105", "301", "308"]


def _api_cards(report: pb.Report) -> Counter[tuple[Any, ...]]:
    kinds = {pb.CARD_TYPE_DEBIT: "debit", pb.CARD_TYPE_CREDIT: "credit"}
    return Counter((c.bank_code, kinds[c.card_type], c.first_four, c.last_four, c.number_length) for c in report.cards)


def _copy_database(db: Path, into: Path) -> Path:
    """The thief's copy: the database file with its WAL and shared memory."""
    into.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copyfile(source, into / f"hub.db{suffix}")
    return into / "hub.db"


def _every_blob(conn: sqlite3.Connection) -> list[bytes]:
    blobs: list[bytes] = []
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for row in conn.execute(f"SELECT * FROM {table}"):
            blobs.extend(bytes(v) for v in row if isinstance(v, bytes))
    return blobs


async def test_a_ready_report_cannot_be_opened_with_the_database_and_every_hub_key(
    harness: HubHarness, tmp_path: Path
) -> None:
    hub = harness
    person = rich_person(hub.population, hub.clock.now().date(), BANKS, min_banks=3)
    await hub.enrol(person)
    query = await hub.ready_query(person, BANKS)
    qid = query.query_id
    config = hub.server.config
    keys = HubKeys.load(config)  # every hub key file

    copy = _copy_database(config.database, tmp_path / "stolen")
    conn = sqlite3.connect(copy)
    try:
        (data_key, ciphertext), *_ = conn.execute("SELECT data_key, ciphertext FROM reports WHERE query_id = ?", (qid,))
        report_sealed = Sealed(bytes(data_key), bytes(ciphertext))
        assert is_user_sealed(report_sealed)
        # No hub-sealed copy of the banks' answers or of the subject is left.
        assert conn.execute(
            "SELECT COUNT(*) FROM bank_tasks WHERE query_id = ? AND (answer_key IS NOT NULL"
            " OR answer_ciphertext IS NOT NULL)",
            (qid,),
        ).fetchone() == (0,)
        assert conn.execute("SELECT subject_key FROM queries WHERE query_id = ?", (qid,)).fetchone() == (None,)
        # Whatever blob pair of the stolen database, under whatever context of
        # this query, the hub's key-encryption key opens none of it.
        contexts = [b"report:" + qid.encode(), b"subject:" + qid.encode()]
        contexts += [f"answer:{qid}:{code}".encode() for code in BANKS]
        blobs = _every_blob(conn)
        assert blobs
        for wrapped, body in itertools.permutations(blobs, 2):
            for context in contexts:
                with pytest.raises(InvalidTag):
                    keys.envelope.open(Sealed(wrapped, body), context)
        # The report needs the user's private key, which only the password derives.
        ((salt,),) = conn.execute("SELECT salt FROM user_keys WHERE user_id = ?", (person.user_id,))
    finally:
        conn.close()
    pepper = bytes.fromhex(keys.keyed_hash.digest(person.user_id, "user_report_key"))
    wrong = "000000" if person.payment_password != "000000" else "000001"
    with pytest.raises(InvalidTag):
        open_with(derive_private_key(wrong, bytes(salt), pepper, DEFAULT_PARAMETERS), report_sealed, contexts[0])
    private = derive_private_key(person.payment_password, bytes(salt), pepper, DEFAULT_PARAMETERS)
    report = decode_report(open_with(private, report_sealed, contexts[0]))
    assert report_cards(report) == expected_cards(hub.population, person, BANKS)
    # And through the API, with the password.
    api_report = await hub.client.get_report(person.user_id, qid, person.payment_password)
    assert _api_cards(api_report) == expected_cards(hub.population, person, BANKS)


async def test_a_password_change_keeps_reports_readable_and_a_reset_does_not(harness: HubHarness) -> None:
    hub = harness
    person = rich_person(hub.population, hub.clock.now().date(), BANKS, min_banks=3)
    await hub.enrol(person)
    qid = (await hub.ready_query(person, BANKS)).query_id
    truth = expected_cards(hub.population, person, BANKS)
    old = person.payment_password
    new = f"{(int(old) + 1) % 10**6:06d}"
    other = f"{(int(old) + 2) % 10**6:06d}"

    # Enrolling again with the same password keeps the key.
    await hub.enrol(person)
    assert _api_cards(await hub.client.get_report(person.user_id, qid, old)) == truth

    await refused("PAYMENT_PASSWORD_WRONG", hub.client.change_payment_password(person.user_id, other, new))
    error = await refused("INVALID_FIELD", hub.client.change_payment_password(person.user_id, old, "12345"))
    assert error.metadata["field"] == "new_payment_password"
    # Four argon2id runs at the hub: a longer deadline than the default 10 s
    # (the suite shares two cores with everything else).
    async with AsyncCardLookupClient(dataclasses.replace(hub.client.options, timeout_s=60.0)) as patient:
        changed = await patient.change_payment_password(person.user_id, old, new)
    assert changed.resealed_report_count == 1 and changed.user.user_id == person.user_id
    await refused("PAYMENT_PASSWORD_WRONG", hub.client.get_report(person.user_id, qid, old))
    assert _api_cards(await hub.client.get_report(person.user_id, qid, new)) == truth

    # A reset: enrol with another password without knowing the current one.
    await hub.client.enroll_user(
        user_id=person.user_id,
        full_name=person.full_name,
        id_number=person.id_number,
        id_expiry_date=person.id_expiry,
        region_code=person.region_code,
        phone_number=person.phone,
        payment_password=other,
    )
    for password in (other, new):
        error = await refused("REPORT_SEALED_TO_OLD_PASSWORD", hub.client.get_report(person.user_id, qid, password))
        assert error.metadata["password_reset_time"]
        assert "nobody can open it" in error.sentence()
    # Refused before the password is checked: nothing more is recorded.
    events = (await hub.client.get_query(person.user_id, qid)).report_access_events
    assert [e.result for e in events] == [
        pb.REPORT_ACCESS_RESULT_VIEWED,
        pb.REPORT_ACCESS_RESULT_WRONG_PASSWORD,
        pb.REPORT_ACCESS_RESULT_VIEWED,
    ]
