"""What goes wrong during the fault soak (bench.soak, issue 9): the hub
process and the store under it with the switches that break them (`Stack`),
the chaos loop (bank faults, hub kills, the store refusing writes), a hostile
client that keeps WatchQuery streams open unread, and the reads counted while
the store refuses writes. `Tally` is what the soak counts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from bank_sim.admin_client import AdminClient
from bank_sim.faults import Faults
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.pki import PkiPaths
from cardlookup.population import Person
from cardlookup.tls import channel_credentials
from client import errors
from client.aio import AsyncCardLookupClient
from client.options import ClientOptions
from devstack import localstack
from hub.core.config import HubConfig, Timings

SOAK_TIMINGS = Timings(
    retry_initial=dt.timedelta(milliseconds=100),
    retry_max=dt.timedelta(seconds=1),
    attempt_timeout=dt.timedelta(seconds=3),
    breaker_reset=dt.timedelta(seconds=1),
    sms_resend_interval=dt.timedelta(seconds=1),
    sms_daily_cap_per_phone=1000,
    lease_duration=dt.timedelta(seconds=3),  # at least attempt_timeout (docs/configuration.md)
)


@dataclass
class Tally:
    accepted: dict[str, Person] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    wrong: set[str] = field(default_factory=set)
    failed: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    lost_detail: dict[str, Any] = field(default_factory=dict)
    store_fault_read_s: list[float] = field(default_factory=list)
    store_fault_write_s: list[float] = field(default_factory=list)


class Stack:
    """The hub process and the store under it, with the switches the chaos
    uses."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.hub: localstack.Process | None = None
        self.port = 0  # the first hub binds a free port; restarts keep it (localstack.pin_bound_port)
        self.pg: ThrowawayPostgres | None = None
        self.database: str | Path = work / "data" / "hub.db"
        self.small_fs: Path | None = None

    def prepare_store(self) -> None:
        if self.args.store == "postgresql":
            self.pg = ThrowawayPostgres.start(durable=True)
            self.database = self.pg.create_database("soak")
            return
        data = self.work / "data"
        data.mkdir()
        if os.geteuid() == 0 and self.args.disk_full:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(data)], check=False)
            if mounted.returncode == 0:
                self.small_fs = data

    def write_config(self, pki_root: Path, banks: dict[str, str]) -> Path:
        timings = SOAK_TIMINGS
        config = HubConfig.dev(
            PkiPaths(pki_root),
            banks,
            self.work,
            listen=f"127.0.0.1:{self.port}",
            database=self.database,
            timings=timings,
            sms_outbox=self.work / "sms-outbox.jsonl",
        )
        path = self.work / "hub.toml"
        path.write_text(config.to_toml(), encoding="utf-8")
        return path

    def start_hub(self) -> None:
        self.hub = localstack.start_hub(self.work / "hub.toml", self.work / "hub.log", ["--log-level", "WARNING"])
        if self.port == 0:
            self.port = localstack.pin_bound_port(self.work / "hub.toml", self.work / "hub.log", self.hub)

    def kill_hub(self) -> None:
        if self.hub is not None and self.hub.poll() is None:
            self.hub.kill()
            self.hub.wait()

    async def refuse_writes(self, seconds: float) -> bool:
        """The store refuses writes for `seconds`; False if not possible here."""
        if self.pg is not None:
            await self._pg_read_only(True)
            await asyncio.sleep(seconds)
            await self._pg_read_only(False)
            return True
        if self.small_fs is None:
            return False
        filler = self.small_fs / "filler"
        await asyncio.to_thread(_fill, filler)
        await asyncio.sleep(seconds)
        filler.unlink(missing_ok=True)
        return True

    async def _pg_read_only(self, on: bool) -> None:
        assert self.pg is not None
        conn = await asyncpg.connect(self.pg.url("postgres"))
        try:
            value = "on" if on else "off"
            await conn.execute(f"ALTER DATABASE soak SET default_transaction_read_only = {value}")
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'soak'"
                " AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()

    def close(self) -> None:
        localstack.stop(self.hub)
        if self.small_fs is not None:
            subprocess.run(["umount", "-l", str(self.small_fs)], check=False)
        if self.pg is not None:
            self.pg.stop()


def _fill(path: Path) -> None:
    """Writes `path` until its filesystem is full."""
    chunk = b"\0" * 65536
    with contextlib.suppress(OSError), path.open("wb") as f:  # even opening may find the disk full
        while True:
            f.write(chunk)
            f.flush()


async def hostile_watcher(options: ClientOptions, tally: Tally, stop: asyncio.Event) -> int:
    """Opens WatchQuery streams on accepted queries and never reads them."""
    opened = 0
    calls: list[Any] = []
    creds = channel_credentials(options.ca, options.cert, options.key)
    async with grpc.aio.secure_channel(options.target, creds, options=options.channel_options()) as channel:
        stub = svc_grpc.CardLookupServiceStub(channel)
        while not stop.is_set():
            for query_id, person in list(tally.accepted.items())[-5:]:
                request = svc.WatchQueryRequest(name=f"users/{person.user_id}/queries/{query_id}")
                calls.append(stub.WatchQuery(request))
                opened += 1
            await asyncio.sleep(1.0)
        for call in calls:
            call.cancel()
    return opened


async def reads_during_store_fault(options: ClientOptions, tally: Tally, done: asyncio.Event) -> None:
    """While the store refuses writes: GetQuery calls on accepted queries
    (the client as configured: health-checked, wait_for_ready) count as
    answered or refused, and one EnrollUser (a write: same data again) per
    fault is timed until the hub refuses it (issue 19: degraded, not blocked)."""
    async with AsyncCardLookupClient(options) as client:
        wrote = False
        while not done.is_set():
            if not tally.accepted:
                await asyncio.sleep(0.1)
                continue
            query_id, person = random.choice(list(tally.accepted.items()))
            t0 = time.perf_counter()
            try:
                if not wrote:
                    wrote = True
                    with contextlib.suppress(errors.CardLookupError):
                        await client.enroll_user(**person.enrolment())
                    tally.store_fault_write_s.append(time.perf_counter() - t0)
                    continue
                await client.get_query(person.user_id, query_id)
                tally.events["store_fault_reads_answered"] += 1
                tally.store_fault_read_s.append(time.perf_counter() - t0)
            except errors.CardLookupError:
                tally.events["store_fault_reads_refused"] += 1
            await asyncio.sleep(0.05)


async def chaos(
    stack: Stack, admin: AdminClient, codes: list[str], tally: Tally, stop_at: float, options: ClientOptions
) -> None:
    rng = random.Random(stack.args.seed)
    next_kill = time.monotonic() + stack.args.kill_every
    healthy = Faults()
    while time.monotonic() < stop_at:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        if time.monotonic() >= next_kill:
            stack.kill_hub()
            tally.events["hub_killed"] += 1
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            stack.start_hub()
            next_kill = time.monotonic() + stack.args.kill_every
            continue
        action = rng.choice(["down", "stall", "break", "exhausted", "slow", "recover", "recover", "store"])
        code = rng.choice(codes)
        if action == "store":
            done = asyncio.Event()
            reader = asyncio.create_task(reads_during_store_fault(options, tally, done))
            try:
                if await stack.refuse_writes(rng.uniform(1.0, 3.0)):
                    tally.events["store_refused_writes"] += 1
            finally:
                done.set()
                await reader
            continue
        faults = {
            "down": Faults(down=True),
            "stall": Faults(stall_after_cards=0),
            "break": Faults(break_after_cards=0),
            "exhausted": Faults(error_rate=1.0, error_code="RESOURCE_EXHAUSTED"),
            "slow": Faults(latency=0.5, latency_jitter=0.5),
            "recover": healthy,
        }[action]
        with contextlib.suppress(Exception):
            await admin.set_faults(code, faults)
            tally.events[f"bank_{action}"] += 1
    for code in codes:
        with contextlib.suppress(Exception):
            await admin.set_faults(code, healthy)
