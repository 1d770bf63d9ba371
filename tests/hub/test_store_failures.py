"""Store write failures (issue 9 item 8): a database on a filesystem that
fills up while queries run loses nothing, the hub says NOT_SERVING for
writes while they fail (issue 19: reads go on) and SERVING once they
succeed again; a hub started on a
read-only database ends with one line and exit status 1.

The filesystem is a real, small tmpfs mounted for the test (root only, as
CI runs); the disk is filled with a real file and freed by deleting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank_sim.faults import Faults
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import Timings
from hub.core.database import ConnectionSettings
from hub.core.domain import QueryState
from hub.process.server import WRITES_HEALTH_SERVICE, HubServer
from hub.store.factory import open_database
from tests.hub.helpers import (
    FAST,
    assert_report_is_ground_truth,
    fleet_config,
    hub_config,
    new_query,
    rich_person,
    running_fleet,
    wait_for,
    wait_until,
)

CODES = list(DEFAULT_BANK_CODES[:8])


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "8m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False)
    if result.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Writes a file until the filesystem is full; returns it. Unbuffered:
    a buffered file would raise ENOSPC again when closed."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


async def serving(hub: HubServer) -> int:
    """The health status of writes (issue 19: reads, "" and the API's name, stay SERVING)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.health_port}") as channel:
        request = health_pb2.HealthCheckRequest(service=WRITES_HEALTH_SERVICE)
        reply = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
    return int(reply.status)


async def test_a_full_disk_loses_no_answer_and_turns_the_writes_health_not_serving(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    people = population.eligible_people(clock.now().date())[:6]
    slow = {c: Faults(latency=1.0) for c in CODES}  # answers arrive after the disk is full
    with small_filesystem(tmp_path / "small") as data:
        async with running_fleet(fleet_config(pki, population, clock, CODES, slow)) as fleet:
            config = hub_config(pki, fleet.addresses, data, health_listen="127.0.0.1:0", database=data / "hub.db")
            hub = HubServer(config, clock)
            await hub.start()
            try:
                queries = [new_query(p, CODES) for p in people]
                for q in queries:
                    await hub.engine.submit(q)
                await wait_until(lambda: all(fleet.call_count(c) >= 1 for c in CODES))
                filler = fill(data)
                # The banks answer into a full disk: writes fail, health turns.
                await wait_until(lambda: not hub.engine.store_healthy, within=30)
                async with asyncio.timeout(30):
                    # Published by a task of the hub's; and the store probe's
                    # one-row write may succeed in WAL space already allocated,
                    # so the status can bounce until the next answer's write fails.
                    while await serving(hub) != health_pb2.HealthCheckResponse.NOT_SERVING:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # failing writes are retried meanwhile
                filler.unlink()
                for q in queries:
                    await wait_for(hub.engine, q.query_id, QueryState.READY, within=60)
                assert hub.engine.store_healthy
                async with asyncio.timeout(10):
                    # The status lives in the hub's health servicer, with no event to await.
                    while await serving(hub) != health_pb2.HealthCheckResponse.SERVING:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                for person, q in zip(people, queries, strict=True):
                    report = await hub.engine.read_report(q.query_id)
                    assert_report_is_ground_truth(report, population, person, CODES)
                # Nothing lost and no bank asked twice for an answer it gave.
                assert all(fleet.call_count(c) == len(queries) for c in CODES)
            finally:
                await hub.stop(grace=0)


async def test_a_read_only_database_ends_the_start_with_one_line(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = rich_person(population, clock.now().date(), CODES, min_banks=1)
    assert person is not None
    with small_filesystem(tmp_path / "ro") as data:
        config = hub_config(pki, {"102": "127.0.0.1:1"}, data, database=data / "hub.db")
        toml = tmp_path / "hub.toml"
        toml.write_text(config.to_toml(), encoding="utf-8")
        subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)  # noqa: ASYNC221 - quick, before the hub runs
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.process.main",
            "--config",
            str(toml),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "database" in lines[0] and "Traceback" not in lines[0]


async def health_of(hub: HubServer, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.health_port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


async def test_a_full_disk_degrades_the_hub_to_reads_and_writes_fail_fast_with_retry_info(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    """Issue 19 item 2: with the disk full, the real client (health-checked,
    wait_for_ready on safe calls, deadlines far away) still reads; writes
    end HUB_UNAVAILABLE with a RetryInfo instead of waiting for a deadline;
    health says so per service; freeing the disk restores writes."""
    import hub.api
    from client.aio import AsyncCardLookupClient
    from client.devface import DevFaceProvider
    from client.errors import HubUnavailable
    from client.options import WRITES_HEALTH_SERVICE as CLIENT_WRITES
    from client.options import ClientOptions
    from tests.api.helpers import HubHarness

    assert CLIENT_WRITES == WRITES_HEALTH_SERVICE
    api = "cardlookup.hub.v1.CardLookupService"
    reader, writer, newcomer = population.eligible_people(clock.now().date())[:3]
    with small_filesystem(tmp_path / "small", size="64m") as data:
        async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
            config = hub_config(pki, fleet.addresses, data, health_listen="127.0.0.1:0", database=data / "hub.db")
            hub = HubServer(config, clock, installers=[hub.api.install])
            await hub.start()
            options = ClientOptions.from_pki(pki.root, f"127.0.0.1:{hub.port}", timeout_s=100.0, create_timeout_s=100.0)
            try:
                async with AsyncCardLookupClient(options) as client:
                    h = HubHarness(client, hub, fleet, clock, population, config.sms_outbox_path(),
                                   DevFaceProvider.from_file(pki.face_provider_key))  # fmt: skip
                    for person in (reader, writer):
                        await h.enrol(person)
                    done = await h.create(reader, CODES)
                    await h.until_ready(reader, done.query_id)
                    for code in CODES:  # the writer's banks answer once the disk is full
                        fleet.set_faults(code, Faults(latency=1.0))
                    running = await h.create(writer, CODES)
                    await wait_until(lambda: all(fleet.call_count(c) >= 2 for c in CODES))
                    filler = fill(data)
                    await wait_until(lambda: not hub.writes_ok, within=30)

                    # Health, per service: reads yes, writes no.
                    assert await health_of(hub, "") == health_pb2.HealthCheckResponse.SERVING
                    assert await health_of(hub, api) == health_pb2.HealthCheckResponse.SERVING
                    assert await health_of(hub, WRITES_HEALTH_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
                    assert "cardlookup_hub_store_writes_healthy 0.0" in hub.metrics.exposition()

                    # Reads keep answering.
                    assert (await client.get_query(reader.user_id, done.query_id)).query_id == done.query_id
                    listed = await client.list_queries(writer.user_id)
                    assert [q.query_id for q in listed.queries] == [running.query_id]
                    watch = client.watch_query(writer.user_id, running.query_id)
                    assert (await anext(watch)).query.query_id == running.query_id
                    await watch.aclose()

                    # Writes fail fast: HUB_UNAVAILABLE with a RetryInfo, well before the 100 s deadline
                    # (GetReport too: it records the access, R10).
                    with pytest.raises(HubUnavailable) as refused:
                        await client.get_report(reader.user_id, done.query_id, reader.payment_password)
                    assert refused.value.retry_delay is not None
                    with pytest.raises(HubUnavailable) as refused:
                        await client.enroll_user(**newcomer.enrolment())
                    assert refused.value.retry_delay is not None and refused.value.retry_delay.total_seconds() > 0

                    filler.unlink()
                    await h.until_ready(writer, running.query_id)
                    await wait_until(lambda: hub.writes_ok, within=30)
                    await wait_until_serving(hub, WRITES_HEALTH_SERVICE)
                    await client.enroll_user(**newcomer.enrolment())  # writes are back
                    report = await client.get_report(reader.user_id, done.query_id, reader.payment_password)
                    assert report.name.endswith(f"queries/{done.query_id}/report")
            finally:
                await hub.stop(grace=0)


async def wait_until_serving(hub: HubServer, service: str) -> None:
    async with asyncio.timeout(30):
        # The status lives in the hub's health servicer, with no event to await.
        while await health_of(hub, service) != health_pb2.HealthCheckResponse.SERVING:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_write_the_store_holds_up_is_refused_within_a_second_once_degraded(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    """Issue 19 item 2, the write cap: another process holds SQLite's write
    lock, so every write waits the store's busy timeout (4 s here: the
    `database_command_timeout`; 10 s by default). The first write fails
    after it (the hub is now degraded); the next is cut at 1 s and refused
    with RetryInfo, before a client deadline (3 s, two attempts) shorter
    than the store's wait; reads answer throughout."""
    import sqlite3

    import hub.api
    from client.aio import AsyncCardLookupClient
    from client.errors import HubUnavailable
    from client.options import ClientOptions, RetryPolicy

    reader, first, second = population.eligible_people(clock.now().date())[:3]
    async with running_fleet(fleet_config(pki, population, clock, CODES[:2])) as fleet:
        timings = dataclasses.replace(FAST, database_command_timeout=dt.timedelta(seconds=4))
        config = hub_config(pki, fleet.addresses, tmp_path, database=tmp_path / "hub.db", timings=timings)
        hub = HubServer(config, clock, installers=[hub.api.install])
        await hub.start()
        lock = sqlite3.connect(tmp_path / "hub.db", timeout=10, isolation_level=None, check_same_thread=False)
        try:
            patient = ClientOptions.from_pki(pki.root, f"127.0.0.1:{hub.port}", timeout_s=60.0)
            hurried = ClientOptions.from_pki(
                pki.root, f"127.0.0.1:{hub.port}", timeout_s=3.0, retry=RetryPolicy(max_attempts=2)
            )
            async with AsyncCardLookupClient(patient) as slow, AsyncCardLookupClient(hurried) as fast:
                await slow.enroll_user(**reader.enrolment())
                await fast.wait_ready(30)
                await asyncio.to_thread(lock.execute, "BEGIN EXCLUSIVE")
                with pytest.raises(HubUnavailable):
                    await slow.enroll_user(**first.enrolment())  # waits the busy timeout, then fails
                assert not hub.writes_ok
                with pytest.raises(HubUnavailable) as refused:
                    await fast.enroll_user(**second.enrolment())
                assert refused.value.code == grpc.StatusCode.UNAVAILABLE  # the hub's answer, not the deadline
                assert refused.value.retry_delay is not None and refused.value.retry_delay.total_seconds() == 5
                assert (await fast.get_user(reader.user_id)).user_id == reader.user_id  # reads go on
        finally:
            lock.close()
            await hub.stop(grace=0)


async def test_sqlites_busy_timeout_is_the_database_command_timeout(tmp_path: Path) -> None:
    """How long a statement waits for another process's lock on the file:
    `timings.database_command_timeout` as the hub opens its store, 10 s
    (the setting's default) when opened without settings."""
    shortened = ConnectionSettings(command_timeout=0.25)
    for settings, expected in [(None, 10_000), (Timings().connection_settings(), 10_000), (shortened, 250)]:
        db = await open_database(tmp_path / "hub.db", settings)
        try:
            assert await db.fetch_val("PRAGMA busy_timeout") == expected
        finally:
            await db.close()
