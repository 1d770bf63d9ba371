"""Issue 12.2, "not my card": the report's owner flags a card, the hub opens
a case at the issuing bank (bank_sim and the Node.js bank), and the case's
reference and status show in the query's history; a bank without the case
service gets the announcement's advice with the masked number.

The real API over mTLS: a hub, 15 simulated banks (one of them without the
CardCaseService) and the Node.js bank at NODE_CODE."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from client import device_key, requests
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.core.config import HubConfig
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.helpers import HubHarness, refused
from tests.node_bank.harness import NodeBank, write_bank_data

NODE_CODE = "308"


def _pick(population: Population, on: dt.date) -> tuple[Person, str, str]:
    """A person with listed cards at the Node bank and at two simulated
    banks: (person, a simulated bank with cases, one without)."""
    for person in population.eligible_people(on):
        if not population.expected_answer(NODE_CODE, person.id_number).listed:
            continue
        others = [
            c for c in DEFAULT_BANK_CODES if c != NODE_CODE and population.expected_answer(c, person.id_number).listed
        ]
        if len(others) >= 2:
            return person, others[0], others[1]
    raise AssertionError("no suitable person in the population")


@pytest.fixture
async def fleet(pki: PkiPaths, population: Population, clock: ManualClock) -> AsyncIterator[BankFleet]:
    _, _, no_cases = _pick(population, clock.now().date())
    config = FleetConfig.default(pki, population, count=16, clock=clock, admin_port=None)
    banks = tuple(dataclasses.replace(b, card_cases=b.code != no_cases) for b in config.banks)
    fleet = BankFleet(dataclasses.replace(config, banks=banks))
    await fleet.start()
    yield fleet
    await fleet.stop(grace=0)


@pytest.fixture
async def harness(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    data = write_bank_data(population, NODE_CODE, tmp_path / "node-cards.json")
    async with NodeBank(pki, NODE_CODE, data) as node_address:
        addresses = {**fleet.addresses, NODE_CODE: node_address}
        config = HubConfig.dev(pki, addresses, tmp_path / "hub", listen="127.0.0.1:0", timings=FAST)
        server = await start_hub(config, clock)
        try:
            async with AsyncCardLookupClient(client_options(pki, server.port)) as client:
                yield HubHarness(
                    client=client,
                    server=server,
                    fleet=fleet,
                    clock=clock,
                    population=population,
                    outbox=config.sms_outbox or tmp_path / "hub" / "sms-outbox.jsonl",
                    face=DevFaceProvider.from_file(pki.face_provider_key),
                )
        finally:
            await server.stop(grace=0)


def _card_of(report: pb.Report, bank_code: str) -> pb.ReportCard:
    return next(c for c in report.cards if c.bank_code == bank_code)


async def test_flagged_cards_open_cases_at_both_bank_implementations_and_show_in_the_history(
    harness: HubHarness,
) -> None:
    hub = harness
    person, sim_code, no_cases = _pick(hub.population, hub.clock.now().date())
    await hub.enrol(person)
    codes = [sim_code, no_cases, NODE_CODE]
    qid = (await hub.ready_query(person, codes)).query_id
    password = person.payment_password
    report = await hub.client.get_report(person.user_id, qid, password)
    sim_card, other_card, node_card = (_card_of(report, c) for c in codes)
    assert len({sim_card.card_id, other_card.card_id, node_card.card_id}) == 3

    # bank_sim: a card the user does not recognise is suspended.
    case = await hub.client.flag_card(person.user_id, qid, password, sim_card.card_id)
    assert case.status == pb.CARD_CASE_STATUS_CARD_SUSPENDED
    assert case.case_reference.startswith(f"C{sim_code}-")
    assert case.masked_card == f"{sim_card.first_four} **** {sim_card.last_four}"
    assert case.next_step and case.next_step_english
    again = await hub.client.flag_card(person.user_id, qid, password, sim_card.card_id)
    assert again.case_reference == case.case_reference
    assert hub.fleet.case_count(sim_code) == 1  # the repeat did not call the bank again

    # The Node.js bank: a card the user wants closed.
    node_case = await hub.client.flag_card(
        person.user_id, qid, password, node_card.card_id, pb.CARD_CASE_KIND_CLOSE_REQUESTED
    )
    assert node_case.status == pb.CARD_CASE_STATUS_RECEIVED
    assert node_case.case_reference.startswith(f"N{NODE_CODE}-")

    # A bank without the case service (UNIMPLEMENTED): the announcement's advice.
    advice = await hub.client.flag_card(person.user_id, qid, password, other_card.card_id)
    assert advice.status == pb.CARD_CASE_STATUS_VISIT_BANK and advice.case_reference == ""
    masked = f"{other_card.first_four} **** {other_card.last_four}"
    assert masked in advice.next_step and masked in advice.next_step_english
    assert "销户" in advice.next_step and "branch" in advice.next_step_english

    # The history: each case with its reference and status, no card digits.
    history = await hub.client.get_query(person.user_id, qid)
    by_card = {c.card_id: c for c in history.card_cases}
    assert by_card[sim_card.card_id].case_reference == case.case_reference
    assert by_card[sim_card.card_id].status == pb.CARD_CASE_STATUS_CARD_SUSPENDED
    assert by_card[node_card.card_id].kind == pb.CARD_CASE_KIND_CLOSE_REQUESTED
    assert by_card[node_card.card_id].case_reference == node_case.case_reference
    assert by_card[other_card.card_id].status == pb.CARD_CASE_STATUS_VISIT_BANK
    assert all(c.masked_card == "" and masked not in c.next_step for c in history.card_cases)
    listed = (await hub.client.list_queries(person.user_id)).queries[0]
    assert len(listed.card_cases) == 3


async def test_flagging_needs_the_password_and_a_card_of_the_report(harness: HubHarness) -> None:
    hub = harness
    person, sim_code, _ = _pick(hub.population, hub.clock.now().date())
    await hub.enrol(person)
    qid = (await hub.ready_query(person, [sim_code])).query_id
    password = person.payment_password
    wrong = f"{(int(password) + 1) % 10**6:06d}"
    await refused("PAYMENT_PASSWORD_WRONG", hub.client.flag_card(person.user_id, qid, wrong, "1"))
    error = await refused("CARD_NOT_FOUND", hub.client.flag_card(person.user_id, qid, password, "99"))
    assert error.metadata["card_id"] == "99"
    error = await refused("INVALID_FIELD", hub.client.flag_card(person.user_id, qid, password, "x"))
    assert error.metadata["field"] == "card_id"
    error = await refused(
        "INVALID_FIELD", hub.client.flag_card(person.user_id, qid, password, "1", pb.CARD_CASE_KIND_UNSPECIFIED)
    )
    assert error.metadata["field"] == "kind"
    # A bank that is down: nothing recorded, the user may retry.
    hub.fleet.set_faults(sim_code, dataclasses.replace(hub.fleet.faults(sim_code), down=True))
    error = await refused("CARD_CASE_NOT_OPENED", hub.client.flag_card(person.user_id, qid, password, "1"))
    assert error.metadata["bank_code"] == sim_code
    assert not (await hub.client.get_query(person.user_id, qid)).card_cases
    hub.fleet.set_faults(sim_code, dataclasses.replace(hub.fleet.faults(sim_code), down=False))
    case = await hub.client.flag_card(person.user_id, qid, password, "1")
    assert case.status == pb.CARD_CASE_STATUS_CARD_SUSPENDED
    # Another user cannot flag this user's card.
    other = next(p for p in hub.population.eligible_people(hub.clock.now().date()) if p.user_id != person.user_id)
    await hub.enrol(other)
    await refused("QUERY_NOT_FOUND", hub.client.flag_card(other.user_id, qid, other.payment_password, "1"))


async def test_a_report_sealed_to_the_device_flags_cards_with_the_card_the_device_opened(harness: HubHarness) -> None:
    """Issue 17 + 12: the hub cannot open a device-sealed report, so the
    device sends the card's bank reference (FlagCardRequest.device_card);
    the hub checks the shape and the bank, the bank checks the card is the
    owner's."""
    hub = harness
    person, sim_code, _ = _pick(hub.population, hub.clock.now().date())
    key = device_key.generate()
    await hub.client.enroll_user(**person.enrolment(), report_public_key=device_key.public_bytes(key))
    qid = (await hub.ready_query(person, [sim_code, NODE_CODE])).query_id
    password = person.payment_password
    report = await hub.client.get_report(person.user_id, qid, password, device_key=key)
    sim_card, node_card = _card_of(report, sim_code), _card_of(report, NODE_CODE)

    case = await hub.client.flag_card(person.user_id, qid, password, sim_card.card_id, device_key=key)
    assert case.status == pb.CARD_CASE_STATUS_CARD_SUSPENDED
    assert case.case_reference.startswith(f"C{sim_code}-")
    assert case.masked_card == f"{sim_card.first_four} **** {sim_card.last_four}"
    assert hub.fleet.case_count(sim_code) == 1
    node_case = await hub.client.flag_card(
        person.user_id, qid, password, node_card.card_id, pb.CARD_CASE_KIND_CLOSE_REQUESTED, device_key=key
    )
    assert node_case.status == pb.CARD_CASE_STATUS_RECEIVED
    history = await hub.client.get_query(person.user_id, qid)
    assert {c.card_id for c in history.card_cases} == {sim_card.card_id, node_card.card_id}

    # Without the device's copy of the card the hub cannot name it to the bank.
    error = await refused("INVALID_FIELD", hub.client.flag_card(person.user_id, qid, password, "3"))
    assert error.metadata["field"] == "device_card"
    response = await hub.client._unary("GetReport", requests.get_report(person.user_id, qid, password))
    opened = device_key.sealed_card(response, key, qid, sim_card.card_id)
    assert opened is not None and opened.bank_code == sim_code

    async def flag_with(card: svc.DeviceSealedCard) -> object:
        request = requests.flag_card(person.user_id, qid, password, "9", pb.CARD_CASE_KIND_NOT_RECOGNISED, card)
        return await hub.client._unary("FlagCard", request)

    other_bank = next(c for c in DEFAULT_BANK_CODES if c not in (sim_code, NODE_CODE))
    for field, changed in (
        ("device_card.bank_code", {"bank_code": other_bank}),
        ("device_card.card_ref", {"card_ref": "no such ref!"}),
        ("device_card.first_four", {"first_four": "12a4"}),
        ("device_card.last_four", {"last_four": ""}),
    ):
        forged = svc.DeviceSealedCard()
        forged.CopyFrom(opened)
        for name, value in changed.items():
            setattr(forged, name, value)
        error = await refused("INVALID_FIELD", flag_with(forged))
        assert error.metadata["field"] == field
    # A well-formed reference the owner does not hold: the bank says so, nothing recorded.
    forged = svc.DeviceSealedCard()
    forged.CopyFrom(opened)
    forged.card_ref = "NOT-A-CARD-OF-THIS-PERSON"
    error = await refused("CARD_NOT_FOUND", flag_with(forged))
    assert error.metadata["card_id"] == "9"
    assert len((await hub.client.get_query(person.user_id, qid)).card_cases) == 2
    assert hub.fleet.case_count(sim_code) == 1
