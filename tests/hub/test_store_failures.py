"""Store write failures (issue 9 item 8): a database on a filesystem that
fills up while queries run loses nothing, the hub says NOT_SERVING while
writes fail and SERVING once they succeed again; a hub started on a
read-only database ends with one line and exit status 1.

The filesystem is a real, small tmpfs mounted for the test (root only, as
CI runs); the disk is filled with a real file and freed by deleting it.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from hub.domain import QueryState
from hub.server import HubServer
from tests.hub.helpers import (
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
    """Writes a file until the filesystem is full; returns it."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


async def serving(hub: HubServer) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.health_port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


async def test_a_full_disk_loses_no_answer_and_turns_health_not_serving(
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
                assert await serving(hub) == health_pb2.HealthCheckResponse.NOT_SERVING
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
            sys.executable, "-m", "hub.main", "--config", str(toml), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "database" in lines[0] and "Traceback" not in lines[0]
