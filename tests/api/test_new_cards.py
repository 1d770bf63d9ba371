"""Issue 12.3, new cards since the last lookup (opt-in): over the real API
with simulated banks, an opted-in second lookup (cooldown passed on the
injected clock) marks exactly the cards issued at the banks in between
(bank_sim's admin IssueCard); the record survives a password change;
opting out deletes it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from bank_sim.admin_client import AdminClient
from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from client import requests
from client.aio import AsyncCardLookupClient
from tests.api.helpers import HubHarness
from tests.hub.helpers import rich_person

BANKS = ["102", "103", "104", "105", "301", "308"]
COOLDOWN = dt.timedelta(days=7, minutes=1)


@pytest.fixture
async def fleet(pki: PkiPaths, population: Population, clock: ManualClock) -> AsyncIterator[BankFleet]:
    """The default fleet, with its admin server (IssueCard)."""
    fleet = BankFleet(FleetConfig.default(pki, population, count=16, clock=clock, admin_port=0))
    await fleet.start()
    yield fleet
    await fleet.stop(grace=0)


async def _lookup(hub: HubHarness, person: Person, track: bool, banks: Sequence[str] = BANKS) -> str:
    verification_id, code = await hub.verify(person)
    request = requests.create_query(
        user_id=person.user_id,
        request_id=uuid.uuid4().hex,
        verification_id=verification_id,
        sms_code=code,
        face_attestation=hub.face.attest(person.user_id, verification_id, hub.clock.now()),
        consent_text_version=(await hub.client.list_banks(person.user_id)).consent_text_version,
        bank_codes=banks,
    )
    query = await hub.client.create_query_request(requests.tracking_new_cards(request) if track else request)
    await hub.until_ready(person, query.query_id)
    return query.query_id


def _card(c: pb.ReportCard) -> tuple[str, str, str]:
    return (c.bank_code, c.first_four, c.last_four)


def _records(hub: HubHarness, user_id: str) -> int:
    conn = sqlite3.connect(hub.server.config.database)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM card_records WHERE user_id = ?", (user_id,)).fetchone()[0])
    finally:
        conn.close()


async def test_an_opted_in_second_lookup_marks_exactly_the_cards_issued_in_between(
    harness: HubHarness, pki: PkiPaths
) -> None:
    hub = harness
    person = rich_person(hub.population, hub.clock.now().date(), BANKS, min_banks=3)
    await hub.enrol(person)
    password = person.payment_password

    first = await hub.client.get_report(person.user_id, await _lookup(hub, person, track=True), password)
    assert not first.new_cards_marked and not any(c.new_since_last_lookup for c in first.cards)
    assert _records(hub, person.user_id) == 1

    # The record is sealed to the password: a change re-wraps it with the reports.
    new_password = f"{(int(password) + 1) % 10**6:06d}"
    # Four argon2id runs at the hub: a longer deadline than the default 10 s
    # (the suite shares two cores with everything else).
    patient = dataclasses.replace(hub.client.options, timeout_s=60.0)
    async with AsyncCardLookupClient(patient) as client:
        await client.change_payment_password(person.user_id, password, new_password)

    hub.clock.advance(COOLDOWN)
    held = [c for c in BANKS if hub.population.expected_answer(c, person.id_number).listed]
    none = [c for c in BANKS if not hub.population.expected_answer(c, person.id_number).listed]
    assert hub.fleet.admin_address is not None
    async with AdminClient.connect(pki, hub.fleet.admin_address, hub.fleet.admin_server_name) as admin:
        issued = [await admin.issue_card(held[0], person.id_number)]
        if none:
            issued.append(await admin.issue_card(none[0], person.id_number, credit=True))
        # A card at a bank the second lookup does not ask is not in its report.
        await admin.issue_card("302", person.id_number)
    expected_new = {(code, c.first_four, c.last_four) for code, c in zip([held[0], *none[:1]], issued, strict=True)}

    second_id = await _lookup(hub, person, track=True)
    second = await hub.client.get_report(person.user_id, second_id, new_password)
    assert second.new_cards_marked
    assert {_card(c) for c in second.cards if c.new_since_last_lookup} == expected_new
    assert {_card(c) for c in second.cards if not c.new_since_last_lookup} == {_card(c) for c in first.cards}
    # Reading again marks the same cards (nothing is updated at read time).
    again = await hub.client.get_report(person.user_id, second_id, new_password)
    assert [c.new_since_last_lookup for c in again.cards] == [c.new_since_last_lookup for c in second.cards]
    assert _records(hub, person.user_id) == 2

    # Opting out deletes the record; the next report marks nothing.
    hub.clock.advance(COOLDOWN)
    third = await hub.client.get_report(person.user_id, await _lookup(hub, person, track=False), new_password)
    assert _records(hub, person.user_id) == 0
    assert not third.new_cards_marked and not any(c.new_since_last_lookup for c in third.cards)
    # Opting in again starts afresh: no earlier record to compare with.
    hub.clock.advance(COOLDOWN)
    fourth = await hub.client.get_report(person.user_id, await _lookup(hub, person, track=True), new_password)
    assert not fourth.new_cards_marked
    assert _records(hub, person.user_id) == 1


async def test_a_device_sealed_report_marks_new_cards_on_the_device(harness: HubHarness, pki: PkiPaths) -> None:
    """Issue 17: the hub never sees the report, so the device compares: each
    answer carries its cards' keyed fingerprints, and GetReport hands over the
    previous lookup's record, sealed to the device, with the report."""
    from client import device_key

    hub = harness
    person = rich_person(hub.population, hub.clock.now().date(), BANKS, min_banks=3)
    key = device_key.generate()
    await hub.client.enroll_user(**person.enrolment(), report_public_key=device_key.public_bytes(key))
    password = person.payment_password
    first_id = await _lookup(hub, person, track=True)
    first = await hub.client.get_report(person.user_id, first_id, password, device_key=key)
    assert not first.new_cards_marked and first.cards
    hub.clock.advance(COOLDOWN)
    held = [c for c in BANKS if hub.population.expected_answer(c, person.id_number).listed]
    assert hub.fleet.admin_address is not None
    async with AdminClient.connect(pki, hub.fleet.admin_address, hub.fleet.admin_server_name) as admin:
        issued = await admin.issue_card(held[0], person.id_number)
    second = await hub.client.get_report(
        person.user_id, await _lookup(hub, person, track=True), password, device_key=key
    )
    assert second.new_cards_marked
    assert {_card(c) for c in second.cards if c.new_since_last_lookup} == {
        (held[0], issued.first_four, issued.last_four)
    }
    assert {_card(c) for c in second.cards if not c.new_since_last_lookup} == {_card(c) for c in first.cards}
