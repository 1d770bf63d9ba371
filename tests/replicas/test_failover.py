"""A PostgreSQL failover the replicas come back from by themselves (issue 21).

Three in-process hub replicas reach the database through a loopback
forwarder (the database's virtual address). Queries are in flight, their
WatchQuery streams open, when the primary's postmaster is SIGKILLed, the
forwarder black-holes every connection it carried (no FIN, no RST: the old
primary's machine vanished) and sends new ones to the standby, which is
promoted. Then:

- every replica turns SERVING again by itself, including those that had
  no bank work (item 1: the store probe; before it, an idle replica stayed
  NOT_SERVING for good);
- every query in flight reaches READY, on the watch streams opened before
  the kill, and new queries are accepted and watched to READY on every
  replica (item 2: command timeouts drop silent connections, the listening
  connection's round trip notices its dead peer; before them, the replicas
  hung on the black-holed connections).

The figures (kill -> first and last NOT_SERVING -> promotion -> all
SERVING, kill -> in-flight READY) are printed with `-s`; the promotion
waits until every replica said NOT_SERVING, so the outage lasts at least
one lease round (a third of the lease). The suite runs 6 queries; a longer run:

    CARDLOOKUP_FAILOVER_QUERIES=30 .venv/bin/pytest tests/replicas/test_failover.py -q -s
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.devpg import PostgresUnavailable
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.core.config import HubConfig
from hub.runtime.health import WRITES_HEALTH_SERVICE
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.helpers import HubHarness
from tests.hub.helpers import wait_until
from tests.replicas.failover import Forwarder, PrimaryStandby, url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

QUERIES = int(os.environ.get("CARDLOOKUP_FAILOVER_QUERIES", "6"))
BANKS = ["102", "103", "104", "105"]
SLOW = BANKS[:2]
"""Banks answering after 2.5 s: their calls are in flight at the kill."""
TIMINGS = dataclasses.replace(
    FAST,
    attempt_timeout=dt.timedelta(seconds=4),
    lease_duration=dt.timedelta(seconds=15),
    store_probe_interval=dt.timedelta(milliseconds=200),
    database_command_timeout=dt.timedelta(seconds=3),
    database_listen_check=dt.timedelta(milliseconds=500),
)
"""Short database timeouts, so the test is quick. The lease (15 s) outlasts
the outage (every replica's lease round, every 5 s, must fail before the
standby is promoted): replica A, which accepted every query, keeps its bank tasks,
and B and C have no bank work at all after it (the idle replicas of item 1)."""
WITHIN = 120.0
"""Generous: the machine may be loaded; the figures are printed, not bounded."""


@pytest.fixture
def pair() -> Iterator[PrimaryStandby]:
    try:
        pair = PrimaryStandby()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        yield pair
    finally:
        pair.stop()


async def health_status(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=WRITES_HEALTH_SERVICE), timeout=10
        )
        return int(answer.status)


async def follow_real_time(clock: ManualClock) -> None:
    while True:
        await asyncio.sleep(0.5)
        clock.advance(dt.timedelta(seconds=0.5))


async def last_state(hub: HubHarness, user_id: str, query_id: str) -> int:
    last = pb.QUERY_STATE_UNSPECIFIED
    async for message in hub.client.watch_query(user_id, query_id):
        last = message.query.state
    return last


async def test_replicas_come_back_from_a_failover_whose_old_primary_vanished(
    pki: PkiPaths,
    population: Population,
    fleet: BankFleet,
    clock: ManualClock,
    tmp_path: Path,
    pair: PrimaryStandby,
) -> None:
    forwarder = Forwarder(pair.primary.port)
    await forwarder.start()
    database = url(forwarder.port, pair.create_database("hub"))
    outbox = tmp_path / "sms-outbox.jsonl"
    face = DevFaceProvider.from_file(pki.face_provider_key)
    hubs: list[HubHarness] = []
    try:
        for name in "ABC":
            config = HubConfig.dev(
                pki,
                fleet.addresses,
                tmp_path / name,
                listen="127.0.0.1:0",
                health_listen="127.0.0.1:0",
                timings=TIMINGS,
                database=database,
                sms_outbox=outbox,
            )
            server = await start_hub(config, clock)
            client = AsyncCardLookupClient(dataclasses.replace(client_options(pki, server.port), timeout_s=WITHIN))
            client.connect()
            hubs.append(HubHarness(client, server, fleet, clock, population, outbox, face))
        await failover_journeys(hubs, pair, forwarder)
    finally:
        for h in hubs:
            await h.client.close()
            await h.server.stop(grace=0)
        await forwarder.close()


async def failover_journeys(hubs: list[HubHarness], pair: PrimaryStandby, forwarder: Forwarder) -> None:
    a = hubs[0]
    people = a.population.eligible_people(a.clock.now().date())[: 2 * QUERIES]
    for person in people:
        await a.enrol(person)
    for code in SLOW:
        a.fleet.set_faults(code, Faults(latency=2.5))
    before, after = people[:QUERIES], people[QUERIES:]
    queries = await asyncio.gather(*(a.create(p, BANKS) for p in before))
    watches = [
        asyncio.create_task(last_state(hubs[i % 3], p.user_id, q.query_id))
        for i, (p, q) in enumerate(zip(before, queries, strict=True))
    ]
    await asyncio.sleep(0.3)  # the watches are open, the slow banks' calls in flight
    unfinished = sum(not w.done() for w in watches)
    monitor = HealthMonitor(hubs)
    tasks = [asyncio.create_task(monitor.run())]
    try:
        pair.kill_primary()
        assert forwarder.move(pair.standby_port) > 0  # the replicas' connections were black-holed, not closed
        # The address now leads to a standby that refuses writes: every replica
        # notices (its lease round fails; no statement hangs on the dead route)
        # and says NOT_SERVING before the standby is promoted.
        await wait_until(lambda: not any(h.server.engine.store_healthy for h in hubs), within=WITHIN)
        all_down = monitor.since()
        for hub in hubs:
            assert await health_status(hub.server.health_port) == health_pb2.HealthCheckResponse.NOT_SERVING
        await asyncio.to_thread(pair.promote)
        promoted = monitor.since()

        # Item 1: every replica SERVING again, A (busy) as well as B and C (idle).
        await wait_until(lambda: all(h.server.engine.store_healthy for h in hubs), within=WITHIN)
        all_serving = monitor.since()
        for hub in hubs:
            assert await health_status(hub.server.health_port) == health_pb2.HealthCheckResponse.SERVING

        # Item 2: the queries in flight reach READY on the streams opened before
        # the kill. The injected clock follows real time from here: a replica
        # whose report build failed on a dead connection leaves the query to
        # whichever replica finds it orphaned, once its last outcome is a lease
        # old by the engine's clock.
        tasks.append(asyncio.create_task(follow_real_time(a.clock)))
        async with asyncio.timeout(WITHIN):
            states = await asyncio.gather(*watches)
        in_flight_ready = monitor.since()
        assert states == [pb.QUERY_STATE_READY] * QUERIES

        # New queries on every replica, watched to READY on another one.
        async with asyncio.timeout(WITHIN):
            new = [await hubs[i % 3].create(p, BANKS) for i, p in enumerate(after)]
            states = await asyncio.gather(
                *(
                    last_state(hubs[(i + 1) % 3], p.user_id, q.query_id)
                    for i, (p, q) in enumerate(zip(after, new, strict=True))
                )
            )
        assert states == [pb.QUERY_STATE_READY] * QUERIES
    finally:
        for task in [*tasks, *watches]:
            task.cancel()
        await asyncio.gather(*tasks, *watches, return_exceptions=True)

    print(
        f"\nfailover figures ({QUERIES} queries, {unfinished} unfinished at the kill;"
        f" load {os.getloadavg()[0]:.1f}): first NOT_SERVING {monitor.first_down()},"
        f" all {all_down:.2f} s; promoted {promoted:.2f} s; all SERVING {all_serving:.2f} s;"
        f" in-flight READY {in_flight_ready:.2f} s (seconds after the kill); transitions {monitor.transitions}"
    )


class HealthMonitor:
    """Each replica's store health, sampled every 20 ms from the kill on."""

    def __init__(self, hubs: list[HubHarness]) -> None:
        self.hubs = hubs
        self.start = time.monotonic()
        self.transitions: dict[str, list[tuple[float, bool]]] = {name: [] for name in "ABC"}

    def since(self) -> float:
        return round(time.monotonic() - self.start, 2)

    def first_down(self) -> str:
        down = [t for changes in self.transitions.values() for t, healthy in changes if not healthy]
        return f"{min(down):.2f} s" if down else "never"

    async def run(self) -> None:
        last = dict.fromkeys("ABC", True)
        while True:
            for name, hub in zip("ABC", self.hubs, strict=True):
                healthy = hub.server.engine.store_healthy
                if healthy != last[name]:
                    self.transitions[name].append((self.since(), healthy))
                    last[name] = healthy
            await asyncio.sleep(0.02)
