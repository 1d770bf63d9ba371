"""Helpers of the replica tests: the bank fleet in this process (so the
test reads its overlap counters), a database on the run's PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.pki import PkiPaths
from cardlookup.population import Population


@asynccontextmanager
async def running_fleet(pki: PkiPaths, population: Population, codes: Sequence[str]) -> AsyncIterator[BankFleet]:
    """The banks on the system clock (hub processes sign consents with it)."""
    config = FleetConfig(
        pki=pki, banks=tuple(BankSimConfig(c) for c in codes), population=population, admin_port=None, seed=8
    )
    fleet = BankFleet(config)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop(grace=0)
