"""The hub over the Node.js bank's session stream (issue 16 item 4): the same
report as per call, one stream for several queries, and a refused exchange
reaching the hub as the bank's reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import HubConfig
from hub.core.domain import BankState, QueryState
from hub.fanout.lanes import Fanout
from tests.hub.helpers import (
    assert_report_is_ground_truth,
    hub_config,
    new_query,
    rich_person,
    running_engine,
    wait_for,
)
from tests.node_bank.harness import NodeBank, write_bank_data

NODE_CODE = "308"


def _clock() -> ManualClock:
    # The Node bank checks consent times against the real clock.
    return ManualClock(dt.datetime.now(dt.UTC))


def _on(config: HubConfig) -> HubConfig:
    return dataclasses.replace(config, banks=tuple(dataclasses.replace(b, session="on") for b in config.banks))


async def test_queries_over_the_node_banks_session_are_ground_truth(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = _clock()
    eligible = population.eligible_people(clock.now().date())
    people = [p for p in eligible if population.expected_answer(NODE_CODE, p.id_number).listed][:3]
    assert len(people) == 3
    data = write_bank_data(population, NODE_CODE, tmp_path / "cards.json")
    async with NodeBank(pki, NODE_CODE, data) as node_address:
        config = _on(hub_config(pki, {NODE_CODE: node_address}, tmp_path / "hub"))
        fanout = Fanout(config)
        async with running_engine(config, clock, fanout=fanout) as engine:
            queries = [new_query(p, [NODE_CODE]) for p in people]
            for query in queries:
                await engine.submit(query)
            for query, who in zip(queries, people, strict=True):
                record = await wait_for(engine, query.query_id, QueryState.READY)
                assert [(b.state, b.attempt_count) for b in record.banks] == [(BankState.ANSWERED, 1)]
                assert_report_is_ground_truth(await engine.read_report(query.query_id), population, who, [NODE_CODE])
            endpoint = config.bank(NODE_CODE)
            assert endpoint is not None
            session = fanout.channels.session(endpoint)
            assert session.streams_opened == 1 and session.breaks == {}


async def test_the_node_banks_refused_exchange_reaches_the_hub_as_its_reason(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    clock = _clock()
    person = rich_person(population, clock.now().date(), [NODE_CODE], min_banks=1)
    data = write_bank_data(population, NODE_CODE, tmp_path / "cards.json")
    other_keys = {"some-other-hub-key": pki.face_provider_public_key}
    async with NodeBank(pki, NODE_CODE, data, consent_keys=other_keys) as node_address:
        config = _on(hub_config(pki, {NODE_CODE: node_address}, tmp_path / "hub"))
        fanout = Fanout(config)
        async with running_engine(config, clock, fanout=fanout) as engine:
            query = new_query(person, [NODE_CODE])
            await engine.submit(query)
            record = await wait_for(engine, query.query_id, QueryState.READY)
            endpoint = config.bank(NODE_CODE)
            assert endpoint is not None
            assert fanout.channels.session(endpoint).streams_opened == 1  # refused in the session
    (bank,) = record.banks
    assert (bank.state, bank.reason, bank.attempt_count) == (
        BankState.REJECTED,
        "BANK_REFUSED:CONSENT_UNKNOWN_KEY",
        1,
    )
