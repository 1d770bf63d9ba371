"""The API port accepts the client's keepalive pings on a quiet stream
(issue 21 item 3).

The documented client pings every 30 s; gRPC servers by default accept a
ping on a connection sending no data at most every 5 minutes and, after two
such pings, close it with GOAWAY ENHANCE_YOUR_CALM "too_many_pings": a
WatchQuery stream quiet for ~2.5 min was cut. The hub now accepts pings
every `timings.api_min_ping_interval` (10 s). Scaled down here: a client
pinging every 0.5 s holds a WatchQuery stream through 6 s of silence (longer
than the three pings the old limit allowed) to READY when the hub accepts
pings every 0.2 s, and is cut when the hub keeps gRPC's default (300 s).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.errors import CardLookupError
from client.options import ClientOptions
from hub.core.config import HubConfig, Timings
from hub.process.server import keepalive_options
from tests import stores
from tests.api.conftest import FAST, client_options, served_harness

QUIET_BANK = "102"
QUIET_S = 6.0
CLIENT_PING_MS = 500


@dataclasses.dataclass(frozen=True)
class FastPings(ClientOptions):
    """The documented client, pinging every 0.5 s instead of 30 s (and with
    gRPC core's client-side ping throttles lifted, so that the scaled-down
    pings are really sent: what is tested is the hub's policy)."""

    def channel_options(self) -> list[tuple[str, Any]]:
        options = [(k, CLIENT_PING_MS if k == "grpc.keepalive_time_ms" else v) for k, v in super().channel_options()]
        return [*options, ("grpc.http2.max_pings_without_data", 0), ("grpc.http2.min_time_between_pings_ms", 100)]


def test_the_hub_accepts_the_documented_clients_pings() -> None:
    client = dict(ClientOptions(target="127.0.0.1:1", ca=Path(), cert=Path(), key=Path()).channel_options())
    hub = dict(keepalive_options(Timings().api_min_ping_interval.total_seconds()))
    assert hub["grpc.http2.min_ping_interval_without_data_ms"] < client["grpc.keepalive_time_ms"]
    assert hub["grpc.keepalive_permit_without_calls"] == 1


@pytest.mark.parametrize(("min_ping_s", "held"), [(0.2, True), (300.0, False)], ids=["hub-accepts", "grpc-default"])
async def test_a_quiet_watch_stream_survives_the_clients_pings(
    pki: PkiPaths,
    population: Population,
    fleet: BankFleet,
    clock: ManualClock,
    tmp_path: Path,
    min_ping_s: float,
    held: bool,
) -> None:
    timings = dataclasses.replace(
        FAST, attempt_timeout=dt.timedelta(seconds=30), api_min_ping_interval=dt.timedelta(seconds=min_ping_s)
    )
    config = HubConfig.dev(
        pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", timings=timings, database=stores.database_for(tmp_path)
    )
    async with served_harness(config, pki, population, fleet, clock) as hub:
        person = hub.eligible(3)
        await hub.enrol(person)
        fleet.set_faults(QUIET_BANK, Faults(latency=QUIET_S))  # the stream says nothing meanwhile
        query = await hub.create(person, [QUIET_BANK])
        plain = client_options(pki, hub.server.port)
        options = FastPings(**{f.name: getattr(plain, f.name) for f in dataclasses.fields(plain)})
        async with AsyncCardLookupClient(options) as pinging:
            states: list[int] = []
            try:
                async for message in pinging.watch_query(person.user_id, query.query_id):
                    states.append(message.query.state)
            except CardLookupError:
                states.append(-1)  # cut: GOAWAY too_many_pings
        if held:
            assert states[-1] == pb.QUERY_STATE_READY
        else:
            assert states[-1] == -1
