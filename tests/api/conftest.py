"""A real hub (HubServer + hub.api.install) on a free port over mTLS, the
real bank fleet, one ManualClock for both, and the async client with the
app backend's certificate."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import hub.api
from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from hub.core.config import HubConfig, Timings
from hub.process.server import HubServer
from tests import stores
from tests.api.helpers import HubHarness

FAST = Timings(
    retry_initial=dt.timedelta(milliseconds=20),
    retry_max=dt.timedelta(milliseconds=200),
    attempt_timeout=dt.timedelta(seconds=5),
    breaker_reset=dt.timedelta(milliseconds=200),
    sweep_interval=dt.timedelta(milliseconds=50),
)


@pytest.fixture
def clock() -> ManualClock:
    # The real current time: consents the hub signs must look valid to banks.
    return ManualClock(dt.datetime.now(dt.UTC))


@pytest.fixture
async def fleet(pki: PkiPaths, population: Population, clock: ManualClock) -> AsyncIterator[BankFleet]:
    fleet = BankFleet(FleetConfig.default(pki, population, count=16, clock=clock, admin_port=None))
    await fleet.start()
    yield fleet
    await fleet.stop(grace=0)


def client_options(pki: PkiPaths, port: int, who: str = "app-backend") -> ClientOptions:
    return ClientOptions(target=f"127.0.0.1:{port}", ca=pki.ca_cert, cert=pki.cert(who), key=pki.key(who))


async def start_hub(config: HubConfig, clock: ManualClock) -> HubServer:
    server = HubServer(config, clock=clock, installers=[hub.api.install])
    await server.start()
    return server


@pytest.fixture
async def harness(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    config = HubConfig.dev(
        pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", timings=FAST, database=stores.database_for(tmp_path)
    )
    async with served_harness(config, pki, population, fleet, clock) as served:
        yield served


@contextlib.asynccontextmanager
async def served_harness(
    config: HubConfig, pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock
) -> AsyncIterator[HubHarness]:
    """A hub started from `config` with the API, and the app backend's
    client connected to it; the hub stops at the end."""
    server = await start_hub(config, clock)
    try:
        async with AsyncCardLookupClient(client_options(pki, server.port)) as client:
            yield HubHarness(
                client=client,
                server=server,
                fleet=fleet,
                clock=clock,
                population=population,
                outbox=config.sms_outbox_path(),
                face=DevFaceProvider.from_file(pki.face_provider_key),
            )
    finally:
        await server.stop(grace=0)
