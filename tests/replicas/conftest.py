"""Fixtures of the replica tests: three in-process hub replicas (HubServer +
hub.api.install, each with its own port and its own engine, lease loop and
caches) on one PostgreSQL database, the bank fleet, one ManualClock, and an
app client per replica. What one replica holds in memory is invisible to the
others, exactly as between processes; only the database is shared."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.core.config import HubConfig
from tests import stores
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.conftest import clock as clock  # fixtures, re-exported
from tests.api.conftest import fleet as fleet
from tests.api.helpers import HubHarness

REPLICAS = ("A", "B", "C")


@pytest.fixture
def replica_db() -> str:
    """The URL of the database the replicas share (a fresh one per test)."""
    return stores.new_database()


@pytest.fixture
async def replicas(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path, replica_db: str
) -> AsyncIterator[list[HubHarness]]:
    """One harness per replica; all share the database and the SMS outbox."""
    url = replica_db
    outbox = tmp_path / "sms-outbox.jsonl"
    face = DevFaceProvider.from_file(pki.face_provider_key)
    harnesses: list[HubHarness] = []
    try:
        for name in REPLICAS:
            config = HubConfig.dev(
                pki,
                fleet.addresses,
                tmp_path / name,
                listen="127.0.0.1:0",
                timings=FAST,
                database=url,
                sms_outbox=outbox,
            )
            server = await start_hub(config, clock)
            # A long deadline: nine argon2 checks at once in one process on a
            # loaded machine take seconds, and a call cut short by its
            # deadline would leave the count the test checks undecided.
            client = AsyncCardLookupClient(dataclasses.replace(client_options(pki, server.port), timeout_s=120))
            client.connect()
            harnesses.append(HubHarness(client, server, fleet, clock, population, outbox, face))
        yield harnesses
    finally:
        for h in harnesses:
            await h.client.close()
            await h.server.stop(grace=0)
