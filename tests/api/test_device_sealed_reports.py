"""Issue 17: answers sealed to the user's device on arrival.

The thief's view: a copy of the database taken WHILE the hub runs (SQLite
file + WAL + SHM; PostgreSQL's whole data directory, no checkpoint) and every
hub key file. No answer and no report of any query past its banks'
validation opens, no card reference appears anywhere in the copied bytes —
and the device key opens every READY report of the copy.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bank_sim.faults import Faults
from cardlookup import sealed_report as sr
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.population import Person
from client import device_key
from hub.keys.crypto import HubKeys, Sealed
from hub.keys.user_sealing import DEVICE, hpke_kind, is_hpke_sealed
from tests import stores
from tests.api.helpers import HubHarness, refused
from tests.hub.helpers import expected_cards

pytestmark = pytest.mark.both_stores

BANKS = ["102", "103", "104", "105", "301", "308"]
SLOW = "308"


def _people(hub: HubHarness, count: int) -> list[Person]:
    on = hub.clock.now().date()
    found = []
    for person in hub.population.eligible_people(on):
        answers = [hub.population.expected_answer(c, person.id_number) for c in BANKS]
        if sum(1 for a in answers if a.listed) >= 3:
            found.append(person)
        if len(found) == count:
            return found
    raise AssertionError("not enough people with cards")


def _api_cards(report: pb.Report) -> Counter[tuple[Any, ...]]:
    kinds = {pb.CARD_TYPE_DEBIT: "debit", pb.CARD_TYPE_CREDIT: "credit"}
    return Counter((c.bank_code, kinds[c.card_type], c.first_four, c.last_four, c.number_length) for c in report.cards)


def _assembled_cards(data: dict[str, Any]) -> Counter[tuple[Any, ...]]:
    return Counter((c[0], c[1], c[2], c[3], c[4]) for c in data["cards"])


def _secrets(hub: HubHarness, people: Sequence[Person]) -> list[bytes]:
    """What must not appear in plaintext anywhere: every card_ref, and each
    card's masked digits as the answer encoding would write them."""
    out = []
    for person in people:
        for code in BANKS:
            for card in hub.population.expected_answer(code, person.id_number).listed:
                out.append(card.card_ref.encode())
                out.append(f'"{card.first_four}","{card.last_four}"'.encode())
    return out


async def _enrol_with_device(hub: HubHarness, person: Person) -> X25519PrivateKey:
    key = device_key.generate()
    await hub.client.enroll_user(**person.enrolment(), report_public_key=device_key.public_bytes(key))
    return key


def _rows_sqlite(copy: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(copy)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out: list[tuple[Any, ...]] = []
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                out.append((table, *(bytes(v) for v in row if isinstance(v, bytes))))
        return out
    finally:
        conn.close()


def _copy_sqlite(db: Path, into: Path) -> tuple[Path, bytes]:
    into.mkdir()
    raw = b""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copyfile(source, into / f"hub.db{suffix}")
            raw += (into / f"hub.db{suffix}").read_bytes()
    return into / "hub.db", raw


def _own(root: Path, as_root: bool) -> None:
    if as_root:
        for path in [root, *root.rglob("*")]:
            shutil.chown(path, "postgres", "postgres")
    root.chmod(0o700)
    (root / "data").chmod(0o700)


async def _copy_postgres() -> tuple[ThrowawayPostgres, bytes]:
    """The running server's data directory copied as is (no CHECKPOINT),
    then a server started on the copy (it replays the copied WAL)."""
    live = stores.server()
    root = Path(tempfile.mkdtemp(prefix="cardlookup-stolen-"))
    shutil.copytree(live.data, root / "data", ignore=shutil.ignore_patterns("postmaster.pid"))
    raw = b"".join(p.read_bytes() for p in sorted((root / "data").rglob("*")) if p.is_file())
    copy = ThrowawayPostgres(live.bindir, root, 0, live._as_root)
    await asyncio.to_thread(_own, root, live._as_root)
    opts = ["-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={root}"]
    copy.port = await asyncio.to_thread(copy.pg_ctl_start, root / "data", root / "server.log", opts)
    return copy, raw


async def _rows_postgres(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        out = []
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                out.append((table, *(bytes(v) for v in row.values() if isinstance(v, bytes | bytearray))))
        return out
    finally:
        await conn.close()


async def test_a_live_copy_with_every_key_file_opens_nothing_and_the_device_opens_every_report(
    harness: HubHarness, tmp_path: Path, store_backend: str
) -> None:
    hub = harness
    people = _people(hub, 3)
    keys = {p.user_id: await _enrol_with_device(hub, p) for p in people}
    ready = [(people[0], (await hub.ready_query(people[0], BANKS)).query_id)]
    ready.append((people[1], (await hub.ready_query(people[1], BANKS)).query_id))
    # A query in flight: every bank but one has answered (and been validated).
    hub.fleet.set_faults(SLOW, Faults(down=True))
    running = await hub.create(people[2], BANKS)
    for _ in range(2000):
        got = await hub.client.get_query(people[2].user_id, running.query_id)
        if sum(b.state != pb.BANK_OUTCOME_STATE_PENDING for b in got.bank_outcomes) == len(BANKS) - 1:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the other banks did not answer")

    config = hub.server.config
    every_key = HubKeys.load(config)
    copy_pg = None
    if store_backend == "sqlite":
        copy, raw = _copy_sqlite(Path(config.database), tmp_path / "stolen")
        rows = _rows_sqlite(copy)
    else:
        # The test server runs with synchronous_commit=off: its WAL writer
        # flushes within wal_writer_delay (200 ms); what the copy holds is
        # what a live copy of a durable server would.
        await asyncio.sleep(1.0)
        copy_pg, raw = await _copy_postgres()
        rows = await _rows_postgres(copy_pg.url(str(stores.current).rsplit("/", 1)[1]))
    try:
        # 1. No plaintext: no card_ref and no masked card of any answer, in
        # any byte of the copy (tables, WAL, dead tuples).
        for secret in _secrets(hub, people):
            assert secret not in raw
        # 2. The hub's keys open no blob of the copy under any context.
        blobs = [b for row in rows for b in row[1:]]
        assert blobs
        contexts = []
        for _, qid in [*ready, (people[2], running.query_id)]:
            contexts += [b"report:" + qid.encode(), b"cards:" + qid.encode()]
            contexts += [f"answer:{qid}:{code}".encode() for code in BANKS]
        for wrapped, body in itertools.permutations(blobs, 2):
            for context in contexts:
                with pytest.raises(InvalidTag):
                    every_key.envelope.open(Sealed(wrapped, body), context)
        # 3. Every stored answer and report is sealed to the device.
        sealed_rows = [(t, Sealed(r[0], r[1])) for t, *r in rows if t in ("bank_tasks", "reports") and len(r) == 2]
        assert sum(1 for t, _ in sealed_rows if t == "bank_tasks") == len(BANKS) - 1  # the running query's
        assert sum(1 for t, _ in sealed_rows if t == "reports") == len(ready)
        for _, sealed in sealed_rows:
            assert is_hpke_sealed(sealed) and hpke_kind(sealed) == DEVICE
        # 4. The device key opens every READY report of the copy.
        opened = 0
        for table, sealed in sealed_rows:
            if table != "reports":
                continue
            person, qid = next(
                (p, q)
                for p, q in ready
                if any(i.split(b"\x00")[2] == q.encode() for i, _ in sr.decode_bundle(sealed.ciphertext))
            )
            data = sr.assemble(sr.open_bundle(keys[person.user_id], sealed.ciphertext, qid))
            assert _assembled_cards(data) == expected_cards(hub.population, person, BANKS)
            opened += 1
        assert opened == len(ready)
    finally:
        if copy_pg is not None:
            await asyncio.to_thread(copy_pg.stop)
    hub.fleet.set_faults(SLOW, Faults())


async def test_get_report_returns_the_sealed_report_that_only_the_device_opens(harness: HubHarness) -> None:
    hub = harness
    (person,) = _people(hub, 1)
    key = await _enrol_with_device(hub, person)
    qid = (await hub.ready_query(person, BANKS)).query_id
    truth = expected_cards(hub.population, person, BANKS)
    with pytest.raises(device_key.DeviceKeyNeeded):
        await hub.client.get_report(person.user_id, qid, person.payment_password)
    report = await hub.client.get_report(person.user_id, qid, person.payment_password, device_key=key)
    assert _api_cards(report) == truth
    assert [s.bank_code for s in report.bank_summaries] == BANKS
    assert [n.kind for n in report.notices][-3:] == [
        pb.NOTICE_KIND_SAFETY,
        pb.NOTICE_KIND_UNRECOGNISED_CARDS,
        pb.NOTICE_KIND_CREDIT_REPORT,
    ]
    # The password gate (R10) still stands before the sealed report.
    wrong = "000000" if person.payment_password != "000000" else "000001"
    await refused("PAYMENT_PASSWORD_WRONG", hub.client.get_report(person.user_id, qid, wrong, device_key=key))
    # Another key opens nothing.
    with pytest.raises(InvalidTag):
        await hub.client.get_report(person.user_id, qid, person.payment_password, device_key=device_key.generate())


async def test_replace_report_key_needs_the_password_and_leaves_old_reports_to_the_old_device(
    harness: HubHarness,
) -> None:
    hub = harness
    (person,) = _people(hub, 1)
    old = await _enrol_with_device(hub, person)
    first = (await hub.ready_query(person, BANKS[:2])).query_id
    new = device_key.generate()
    wrong = "000000" if person.payment_password != "000000" else "000001"
    await refused(
        "PAYMENT_PASSWORD_WRONG", hub.client.replace_report_key(person.user_id, wrong, device_key.public_bytes(new))
    )
    error = await refused(
        "INVALID_FIELD", hub.client.replace_report_key(person.user_id, person.payment_password, b"short")
    )
    assert error.metadata["field"] == "report_public_key"
    epoch = await hub.client.replace_report_key(person.user_id, person.payment_password, device_key.public_bytes(new))
    assert epoch == 2
    # The old report stays the old device's.
    assert _api_cards(await hub.client.get_report(person.user_id, first, person.payment_password, device_key=old))
    with pytest.raises(InvalidTag):
        await hub.client.get_report(person.user_id, first, person.payment_password, device_key=new)
