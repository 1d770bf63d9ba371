"""Fixtures of the bank simulator tests: a running fleet of the 16 default
banks over real mTLS, driven by a ManualClock, and a hub-like caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from tests.bank.caller import BankCaller, bank_caller


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
async def fleet(pki: PkiPaths, population: Population, clock: ManualClock) -> AsyncIterator[BankFleet]:
    async with BankFleet(FleetConfig.default(pki, population, clock=clock, seed=7)) as running:
        yield running


@pytest.fixture
async def caller(pki: PkiPaths, fleet: BankFleet) -> AsyncIterator[BankCaller]:
    async with bank_caller(pki, fleet.addresses) as c:
        yield c


@pytest.fixture
def customer(population: Population) -> tuple[Person, str]:
    """A person with at least two listed cards at some bank, and that bank."""
    for person in population.people:
        for code in ("102", "103", "104", "105", "308"):
            if len(population.expected_answer(code, person.id_number).listed) >= 2:
                return person, code
    raise AssertionError("the population has no suitable customer")
