"""One client over several hub replicas (issue 8 item 4): calls are spread
over every replica (gRPC round_robin), keep succeeding within their
deadlines when a replica is SIGKILLed, and avoid a replica that reports
NOT_SERVING (client-side health checking), then return to it.

Each hub here has its own SQLite file (shared PostgreSQL replicas are the
lead's part of issue 8), so the replicas share only the PKI and the
population. Which replica answered is told by the data itself: the same
user id is enrolled in each replica with a phone number that ends in the
replica's number, and GetUser's `masked_phone` shows the last four digits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from rich.console import Console

import hub.api
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from client.aio import AsyncCardLookupClient
from client.cli import run
from client.options import SERVICE, ClientOptions
from devstack import localstack
from hub.core.config import HubConfig
from hub.process.server import HubServer
from tests.api.conftest import FAST

PROBE = "probe-user"
NOWHERE = {"102": "127.0.0.1:9"}  # no call here reaches a bank


def probe_phone(person: Person, replica: int) -> str:
    return person.phone[:-4] + f"{9000 + replica}"


def replica_of(masked_phone: str) -> int:
    return int(masked_phone[-4:]) - 9000


async def enrol_probe(options: ClientOptions, person: Person, replica: int) -> None:
    async with AsyncCardLookupClient(options) as one:
        await one.wait_ready(60)
        await one.enroll_user(
            user_id=PROBE,
            full_name=person.full_name,
            id_number=person.id_number,
            id_expiry_date=person.id_expiry,
            region_code=person.region_code,
            phone_number=probe_phone(person, replica),
            payment_password=person.payment_password,
        )


async def answered_by(client: AsyncCardLookupClient) -> int:
    return replica_of((await client.get_user(PROBE)).masked_phone)


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def all_replicas_answer(client: AsyncCardLookupClient, count: int) -> None:
    """Waits (bounded) until every replica has answered once: subchannels
    connect one by one, and round_robin only picks those that are ready."""
    seen: set[int] = set()
    deadline = time.monotonic() + 20
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only replicas {sorted(seen)} answered"
        seen.add(await answered_by(client))


@dataclasses.dataclass
class Replicas:
    pki: PkiPaths
    person: Person
    ports: list[int]
    processes: list[localstack.Process]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    def options(self, target: str | list[str], **overrides: object) -> ClientOptions:
        return ClientOptions.from_pki(self.pki.root, target, **overrides)


@pytest.fixture
async def replicas(pki: PkiPaths, population: Population, tmp_path: Path) -> AsyncIterator[Replicas]:
    """Three `cardlookup-hub` processes, each on its own SQLite file."""
    person = population.eligible_people(dt.date.today())[0]
    processes = []
    try:
        for i in range(3):
            work = tmp_path / f"hub{i}"
            work.mkdir()
            localstack.write_hub_config(work / "hub.toml", pki, 0, NOWHERE, work)  # port 0: the hub logs its port
            processes.append(localstack.start_hub(work / "hub.toml", work / "hub.log"))
        ports = [
            await asyncio.to_thread(localstack.wait_for_hub, tmp_path / f"hub{i}" / "hub.log", process)
            for i, process in enumerate(processes)
        ]
        group = Replicas(pki, person, ports, processes)
        await asyncio.gather(*(enrol_probe(group.options(a), person, i) for i, a in enumerate(group.addresses)))
        yield group
    finally:
        for process in processes:
            process.kill()
            process.wait()


async def test_calls_are_spread_over_every_replica_and_survive_one_killed(replicas: Replicas, pki: PkiPaths) -> None:
    options = replicas.options(replicas.addresses, timeout_s=5.0)
    async with AsyncCardLookupClient(options) as client:
        await all_replicas_answer(client, 3)
        spread = Counter([await answered_by(client) for _ in range(30)])
        assert set(spread) == {0, 1, 2} and min(spread.values()) >= 5, spread  # pick_first would give 30/0/0

        # Four callers keep calling; replica 1 is SIGKILLed after the first 12 answers.
        answers: list[tuple[int, bool]] = []
        killed = asyncio.Event()

        async def caller() -> None:
            for _ in range(15):
                # "Late" = sent after the kill: a call replica 1 had already
                # taken may still be answered while the signal lands.
                late = killed.is_set()
                answers.append((await answered_by(client), late))
                if len(answers) >= 12 and not killed.is_set():
                    killed.set()
                    replicas.processes[1].kill()

        # Any call that failed, or outlived its 5 s deadline (DEADLINE_EXCEEDED), would raise here.
        await asyncio.gather(*(caller() for _ in range(4)))
        assert len(answers) == 60 and killed.is_set()
        after = Counter(replica for replica, late in answers if late)
        assert set(after) == {0, 2}, after

        # A call that is never retried nor waits (StartVerification) goes
        # straight to a live replica: the dead one is out of the rotation.
        started_verification = await client.start_verification(PROBE)
        assert replica_of(started_verification.masked_phone) in {0, 2}

    # The `cardlookup` CLI takes the replicas as --hub a,b,c and/or repeated --hub.
    out = io.StringIO()
    argv = ["--hub", replicas.addresses[0], "--hub", ",".join(replicas.addresses[1:]), "--pki", str(pki.root)]
    for _ in range(4):
        code = await asyncio.to_thread(run, [*argv, "banks", "--user-id", PROBE], Console(file=out, width=80))
        assert code == 0, out.getvalue()


async def test_a_replica_reporting_not_serving_gets_no_calls_until_it_serves_again(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = population.eligible_people(clock.now().date())[0]
    hubs = []
    try:
        for i in range(3):
            config = HubConfig.dev(pki, NOWHERE, tmp_path / f"hub{i}", listen="127.0.0.1:0", timings=FAST)
            (tmp_path / f"hub{i}").mkdir()
            hubs.append(HubServer(config, clock=clock, installers=[hub.api.install]))
            await hubs[-1].start()
            await enrol_probe(ClientOptions.from_pki(pki.root, f"127.0.0.1:{hubs[-1].port}"), person, i)
        addresses = [f"127.0.0.1:{h.port}" for h in hubs]
        async with AsyncCardLookupClient(ClientOptions.from_pki(pki.root, addresses, timeout_s=5.0)) as client:
            await all_replicas_answer(client, 3)
            # The hub's own health servicer (what its graceful shutdown uses);
            # the replica stays up and its connection stays open.
            health = hubs[1]._health
            assert health is not None
            await health.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)

            async def avoided() -> bool:
                return 1 not in {await answered_by(client) for _ in range(6)}

            await until(avoided, 5, "the NOT_SERVING replica still gets calls")
            after = Counter([await answered_by(client) for _ in range(30)])
            assert set(after) == {0, 2}, after

            await health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)

            async def back() -> bool:
                return 1 in {await answered_by(client) for _ in range(6)}

            await until(back, 5, "the replica serving again gets no calls")
    finally:
        for h in hubs:
            await h.stop(grace=0)


def test_the_cli_refuses_several_hubs_given_by_name(pki: PkiPaths) -> None:
    out = io.StringIO()
    argv = ["--hub", "hub-a.example:50051", "--hub", "hub-b.example:50051", "--pki", str(pki.root)]
    code = run([*argv, "list", "--user-id", "u1"], Console(file=out, width=200))
    assert code == 2
    assert "Error: --hub: several hub addresses must each be an IP address with its port" in out.getvalue()
