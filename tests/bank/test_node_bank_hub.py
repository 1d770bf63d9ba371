"""The hub serves queries through the Node.js bank, over mTLS, next to
simulated banks: the report is the population's ground truth, and the Node
bank's rich errors reach the hub's per-bank outcome."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.domain import BankState, QueryState
from tests.hub.helpers import (
    assert_report_is_ground_truth,
    fleet_config,
    hub_config,
    new_query,
    rich_person,
    running_engine,
    running_fleet,
    wait_for,
)
from tests.node_bank.harness import NodeBank, write_bank_data

NODE_CODE = "308"
SIM_CODES = ["102", "105", "301"]
CODES = [*SIM_CODES, NODE_CODE]


def _clock() -> ManualClock:
    # The Node bank checks consent times against the real clock.
    return ManualClock(dt.datetime.now(dt.UTC))


async def test_a_query_through_the_node_bank_is_ground_truth(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = _clock()
    person = rich_person(population, clock.now().date(), CODES, min_banks=2)
    assert population.expected_answer(NODE_CODE, person.id_number).listed, "pick a person with cards at the Node bank"
    data = write_bank_data(population, NODE_CODE, tmp_path / "cards.json")
    async with (
        running_fleet(fleet_config(pki, population, clock, SIM_CODES)) as fleet,
        NodeBank(pki, NODE_CODE, data) as node_address,
    ):
        config = hub_config(pki, {**fleet.addresses, NODE_CODE: node_address}, tmp_path / "hub")
        async with running_engine(config, clock) as engine:
            query = new_query(person, CODES)
            await engine.submit(query)
            record = await wait_for(engine, query.query_id, QueryState.READY)
            assert all(b.state == BankState.ANSWERED for b in record.banks), record.banks
            report = await engine.read_report(query.query_id)
            assert_report_is_ground_truth(report, population, person, CODES)


async def test_the_node_banks_refusal_reaches_the_hub_as_its_reason(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    """A Node bank that does not trust the hub's consent key refuses with
    PERMISSION_DENIED + ErrorInfo CONSENT_UNKNOWN_KEY; the hub does not retry
    and records that reason for the bank."""
    clock = _clock()
    person = rich_person(population, clock.now().date(), CODES, min_banks=2)
    data = write_bank_data(population, NODE_CODE, tmp_path / "cards.json")
    other_keys = {"some-other-hub-key": pki.face_provider_public_key}
    async with NodeBank(pki, NODE_CODE, data, consent_keys=other_keys) as node_address:
        config = hub_config(pki, {NODE_CODE: node_address}, tmp_path / "hub")
        async with running_engine(config, clock) as engine:
            query = new_query(person, [NODE_CODE])
            await engine.submit(query)
            record = await wait_for(engine, query.query_id, QueryState.READY)
    (bank,) = record.banks
    assert (bank.state, bank.reason, bank.attempt_count) == (
        BankState.REJECTED,
        "BANK_REFUSED:CONSENT_UNKNOWN_KEY",
        1,
    )
