"""Helpers of the hub engine tests: a real fleet, a real database file, a
real engine, and the population's ground truth in the report's terms."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.clock import Clock
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from hub.core.config import HubConfig, Timings
from hub.core.domain import BankState, NewQuery, QueryRecord, QueryState, Report, Subject
from hub.engine import QueryEngine
from hub.keys.crypto import HubKeys
from hub.store.db import open_database
from tests import stores

FAST = Timings(
    retry_initial=dt.timedelta(milliseconds=20),
    retry_max=dt.timedelta(milliseconds=100),
    attempt_timeout=dt.timedelta(seconds=5),
    breaker_failures=50,
    breaker_reset=dt.timedelta(milliseconds=100),
)


def rich_person(population: Population, on: dt.date, codes: Sequence[str], min_banks: int = 4) -> Person:
    """An eligible person with listed cards at several of `codes` and at
    least one unlisted card somewhere (so every part of a report shows)."""
    for person in population.eligible_people(on):
        answers = [population.expected_answer(c, person.id_number) for c in codes]
        if sum(1 for a in answers if a.listed) >= min_banks and any(a.unlisted for a in answers):
            return person
    raise AssertionError("no suitable person in the population")


def new_query(person: Person, codes: Sequence[str], user_id: str | None = None) -> NewQuery:
    return NewQuery(
        query_id=str(uuid.uuid4()),
        user_id=user_id or person.user_id,
        subject=Subject(full_name=person.full_name, id_number=person.id_number),
        bank_codes=tuple(codes),
        consent_text_version="2022-03-01",
    )


def expected_cards(population: Population, person: Person, codes: Sequence[str]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (c.bank_code, c.kind, c.first_four, c.last_four, len(c.number))
        for code in codes
        for c in population.expected_answer(code, person.id_number).listed
    )


def report_cards(report: Report) -> Counter[tuple[Any, ...]]:
    return Counter((c.bank_code, c.kind, c.first_four, c.last_four, c.number_length) for c in report.cards)


def assert_report_is_ground_truth(report: Report, population: Population, person: Person, codes: Sequence[str]) -> None:
    assert report_cards(report) == expected_cards(population, person, codes)
    assert [s.bank_code for s in report.banks] == list(codes)
    for section in report.banks:
        truth = population.expected_answer(section.bank_code, person.id_number)
        assert section.state == BankState.ANSWERED
        assert (section.debit_count, section.credit_count) == (truth.debit_count, truth.credit_count)
        assert section.unlisted == truth.unlisted


def fleet_config(
    pki: PkiPaths, population: Population, clock: Clock, codes: Sequence[str], faults: dict[str, Faults] | None = None
) -> FleetConfig:
    faults = faults or {}
    banks = tuple(BankSimConfig(code=c, faults=faults.get(c, Faults())) for c in codes)
    return FleetConfig(pki=pki, banks=banks, population=population, clock=clock, admin_port=None, seed=1)


def hub_config(pki: PkiPaths, addresses: dict[str, str], data_dir: Path, **overrides: Any) -> HubConfig:
    overrides.setdefault("timings", FAST)
    overrides.setdefault("listen", "127.0.0.1:0")
    overrides.setdefault("database", stores.database_for(data_dir))
    return HubConfig.dev(pki, addresses, data_dir, **overrides)


@contextlib.asynccontextmanager
async def running_fleet(config: FleetConfig) -> AsyncIterator[BankFleet]:
    fleet = BankFleet(config)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop(grace=0)


@contextlib.asynccontextmanager
async def running_engine(config: HubConfig, clock: Clock, **kw: Any) -> AsyncIterator[QueryEngine]:
    db = await open_database(config.database)
    engine = QueryEngine(config, db, HubKeys.load(config), clock, **kw)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop(grace=1.0)
        await db.close()


async def wait_for(
    engine: QueryEngine, query_id: str, state: QueryState = QueryState.READY, within: float = 30
) -> QueryRecord:
    async def poll() -> QueryRecord:
        async for event in engine.watch(query_id):
            if event.query.state == state:
                return event.query
        record = await engine.get(query_id)
        assert record is not None
        return record

    record = await asyncio.wait_for(poll(), within)
    assert record.state == state, record.state
    return record


async def wait_until(predicate: Any, within: float = 30, interval: float = 0.02) -> None:
    """Polls a condition on real state (a bank's call count, ...)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the state lives in another component, with no event to await
            await asyncio.sleep(interval)


def replace_address(config: HubConfig, code: str, address: str) -> HubConfig:
    banks = tuple(dataclasses.replace(b, address=address) if b.code == code else b for b in config.banks)
    return dataclasses.replace(config, banks=banks)
