"""The fault soak (issue 9): full user journeys while everything around the
hub misbehaves, then a count of what was lost (must be 0).

    python -m bench.soak [--duration 60] [--users 120] [--concurrency 12]
        [--store sqlite|postgresql] [--kill-every 6] [--seed 1] [--json out.json]

Loopback only, bounded in time (`--duration` of chaos, then at most
`--drain` seconds for the accepted queries to finish) and in count (each
user looks up once). Processes: the bank fleet (`cardlookup-banks`, with its
admin API for fault switches), one hub (`cardlookup-hub`), and this driver.
During the chaos phase, every ~second one of these happens:
  - a bank goes down, stalls mid-stream, breaks mid-stream, answers
    RESOURCE_EXHAUSTED, or slows down (bank_sim fault switches), and later
    recovers;
  - the hub is SIGKILLed and restarted (every `--kill-every` seconds);
  - the store refuses writes for a few seconds: on SQLite the database lives
    on a small tmpfs that is filled up and then freed (root only, as CI
    runs; skipped otherwise); on PostgreSQL the database is switched to
    read-only and its sessions dropped, then switched back;
and throughout, a hostile client keeps WatchQuery streams open and never
reads them. Then every fault is cleared, the hub is left running, and the
driver waits for every accepted query.

Printed: users, accepted, completed (READY, report equal to the population's
ground truth), reads answered / refused while the store refused writes (and
how long those reads and one write took: the hub stays up for reads and
refuses writes fast, issue 19), failed journeys by reason (refusals the user would see, e.g.
SMS rate limits; these are not losses), lost (accepted but never READY, or
READY with a wrong report: must be 0), and create->READY latency
percentiles. Exit status 1 if anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from bank_sim.admin_client import AdminClient
from bank_sim.faults import Faults
from bench.people import pick_people, population_for
from bench.stats import percentile
from cardlookup.banks import bank_fleet
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import create_dev_pki
from cardlookup.population import Person, Population
from cardlookup.tls import channel_credentials
from client import errors, localstack
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from hub.config import HubConfig, Timings
from hub.notify import OutboxTail
from hub.store.db import open_database

BANKS = 8
SOAK_TIMINGS = Timings(
    retry_initial=dt.timedelta(milliseconds=100),
    retry_max=dt.timedelta(seconds=1),
    attempt_timeout=dt.timedelta(seconds=3),
    breaker_reset=dt.timedelta(seconds=1),
    sms_resend_interval=dt.timedelta(seconds=1),
    sms_daily_cap_per_phone=1000,
    lease_duration=dt.timedelta(seconds=3),  # at least attempt_timeout (docs/configuration.md)
)
TYPE = {pb.CARD_TYPE_DEBIT: "debit", pb.CARD_TYPE_CREDIT: "credit"}


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


def truth(population: Population, person: Person, codes: list[str]) -> Counter[tuple[str, str, str, str]]:
    return Counter(
        (c.bank_code, str(c.kind), c.first_four, c.last_four)
        for code in codes
        for c in population.expected_answer(code, person.id_number).listed
    )


def seen(report: pb.Report) -> Counter[tuple[str, str, str, str]]:
    return Counter((c.bank_code, TYPE.get(c.card_type, "?"), c.first_four, c.last_four) for c in report.cards)


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
        from cardlookup.pki import PkiPaths

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


async def journey(
    client: AsyncCardLookupClient,
    person: Person,
    outbox: OutboxTail,
    face: DevFaceProvider,
    codes: list[str],
    population: Population,
    tally: Tally,
    stop_at: float,
) -> None:
    """One user's whole journey, retrying what a real app would retry."""
    request_id = uuid.uuid4().hex
    query_id = ""
    while not query_id:
        if time.monotonic() > stop_at:
            tally.failed["NOT_STARTED_IN_TIME"] += 1
            return
        try:
            started = await client.start_verification(person.user_id)
            code = await outbox.code_for(person.phone, timeout_s=10)
            attestation = face.attest(person.user_id, started.verification_id, dt.datetime.now(dt.UTC))
            t0 = time.perf_counter()
            created = await client.create_query(
                user_id=person.user_id,
                request_id=request_id,
                verification_id=started.verification_id,
                sms_code=code,
                face_attestation=attestation,
                consent_text_version="2022-03-01",
                bank_codes=codes,
            )
            query_id = created.query_id
        except errors.QueryInProgress as busy:
            # A CreateQuery whose answer was lost in a hub kill: the query exists.
            query_id = str(getattr(busy, "metadata", {}).get("query_id", ""))
            t0 = time.perf_counter()
            if not query_id:
                tally.failed["QUERY_IN_PROGRESS"] += 1
                return
        except (errors.Retryable, TimeoutError, errors.VerificationUsed, errors.VerificationNotFound):
            await asyncio.sleep(1.0)  # hub restarting, SMS rate limit, lost SMS: start again
        except errors.CardLookupError as refused:
            tally.failed[type(refused).__name__] += 1
            return
    tally.accepted[query_id] = person
    while True:
        try:
            query = await client.get_query(person.user_id, query_id)
        except errors.Retryable:
            await asyncio.sleep(0.5)
            continue
        if query.state == pb.QUERY_STATE_READY:
            break
        await asyncio.sleep(0.3)
    tally.latencies.append(time.perf_counter() - t0)
    while True:
        try:
            report = await client.get_report(person.user_id, query_id, person.payment_password)
            break
        except errors.Retryable:
            await asyncio.sleep(0.5)
    if seen(report) == truth(population, person, codes) and all(
        s.state == pb.BANK_OUTCOME_STATE_ANSWERED for s in report.bank_summaries
    ):
        tally.completed.add(query_id)
    else:
        tally.wrong.add(query_id)


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


@dataclass
class Setup:
    work: Path
    stack: Stack
    codes: list[str]
    population: Population
    people: list[Person]
    options: ClientOptions
    face: DevFaceProvider
    admin_address: str
    admin_server_name: str
    pki_root: Path


def set_up(args: argparse.Namespace, work: Path, stack: Stack) -> tuple[Setup, localstack.Process]:
    """PKI, people, the bank fleet process, the store and the hub process."""
    from cardlookup.pki import PkiPaths

    codes = [b.code for b in bank_fleet(BANKS)]
    pki = create_dev_pki(work / "pki", codes)
    today = dt.datetime.now(dt.UTC).date()
    population = population_for(args.users, BANKS, today)
    people = pick_people(population, args.users, today)
    addresses = work / "banks.json"
    extra = ["--population-size", str(population.size)]
    banks_proc = localstack.start_banks(pki, BANKS, addresses, work / "banks.log", extra, admin=True)
    localstack.wait_for_file(addresses, banks_proc, "the bank fleet", work / "banks.log")
    stack.prepare_store()
    stack.write_config(pki.root, localstack.read_addresses(addresses))
    stack.start_hub()
    setup = Setup(
        work=work,
        stack=stack,
        codes=codes,
        population=population,
        people=people,
        options=ClientOptions.from_pki(pki.root, f"127.0.0.1:{stack.port}"),
        face=DevFaceProvider.from_file(PkiPaths(pki.root).face_provider_key),
        admin_address=json.loads(addresses.read_text())["admin"],
        admin_server_name=json.loads(addresses.read_text())["admin_server_name"],
        pki_root=pki.root,
    )
    return setup, banks_proc


async def run(args: argparse.Namespace, setup: Setup, tally: Tally) -> float:
    from cardlookup.pki import PkiPaths

    stack, codes, population, options, face = setup.stack, setup.codes, setup.population, setup.options, setup.face
    outbox = OutboxTail(setup.work / "sms-outbox.jsonl")
    pki = PkiPaths(setup.pki_root)
    async with (
        AsyncCardLookupClient(options) as client,
        AdminClient.connect(pki, setup.admin_address, setup.admin_server_name) as admin,
    ):
        await client.wait_ready(60)
        for p in setup.people:
            await client.enroll_user(**p.enrolment())
        start = time.monotonic()
        stop_at = start + args.duration
        stop = asyncio.Event()
        gate = asyncio.Semaphore(args.concurrency)

        async def one(p: Person) -> None:
            async with gate:
                await journey(client, p, outbox, face, codes, population, tally, stop_at + args.drain)

        hostile = asyncio.create_task(hostile_watcher(options, tally, stop))
        chaos_task = asyncio.create_task(chaos(stack, admin, codes, tally, stop_at, options))
        journeys = [asyncio.create_task(one(p)) for p in setup.people]
        await chaos_task
        if stack.hub is None or stack.hub.poll() is not None:
            stack.start_hub()
        try:
            await asyncio.wait_for(asyncio.gather(*journeys, return_exceptions=True), args.drain)
        except TimeoutError:
            tally.events["drain_timed_out"] += 1
        stop.set()
        tally.events["hostile_streams_opened"] = await hostile
        elapsed = time.monotonic() - start
    await explain_lost(stack, tally)
    return elapsed


async def explain_lost(stack: Stack, tally: Tally) -> None:
    """For each lost query, what the store says (states and leases only)."""
    lost = set(tally.accepted) - tally.completed - tally.wrong
    if not lost:
        return
    db = await open_database(stack.database)
    try:
        for query_id in sorted(lost):
            q = await db.fetchone("SELECT state FROM queries WHERE query_id = ?", (query_id,))
            rows = await db.fetchall(
                "SELECT bank_code, state, reason, attempt_count, lease_owner, lease_epoch, lease_expires"
                " FROM bank_tasks WHERE query_id = ? AND state = 'PENDING'",
                (query_id,),
            )
            tally.lost_detail[query_id] = {
                "state": q[0] if q else None,
                "pending": [[str(x) for x in r] for r in rows],
            }
    finally:
        await db.close()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report(args: argparse.Namespace, setup: Setup, tally: Tally, elapsed: float) -> int:
    lost = (set(tally.accepted) - tally.completed - tally.wrong) | tally.wrong
    lat = sorted(tally.latencies)
    result = {
        "store": args.store,
        "seconds": round(elapsed, 1),
        "users": len(setup.people),
        "accepted": len(tally.accepted),
        "completed": len(tally.completed),
        "failed_by_reason": dict(tally.failed),
        "lost": len(lost),
        "wrong_reports": len(tally.wrong),
        "latency_s": {q: round(percentile(lat, q), 2) for q in (50, 90, 99)} if lat else {},
        "injected": dict(tally.events),
        "during_store_faults": {
            "reads_answered": tally.events["store_fault_reads_answered"],
            "reads_refused": tally.events["store_fault_reads_refused"],
            "read_s_p99": round(percentile(sorted(tally.store_fault_read_s), 99), 3)
            if tally.store_fault_read_s
            else None,
            "write_refused_s_max": round(max(tally.store_fault_write_s), 3) if tally.store_fault_write_s else None,
        },
        "lost_detail": tally.lost_detail,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 1 if lost else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of chaos")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds allowed to finish afterwards")
    parser.add_argument("--users", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--kill-every", type=float, default=6.0, help="seconds between hub SIGKILLs")
    parser.add_argument("--no-disk-full", dest="disk_full", action="store_false")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default="")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cardlookup-soak-"))
    stack = Stack(args, work)
    banks_proc = None
    tally = Tally()
    try:
        setup, banks_proc = set_up(args, work, stack)
        elapsed = asyncio.run(run(args, setup, tally))
    finally:
        stack.close()
        localstack.stop(banks_proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(report(args, setup, tally, elapsed))


if __name__ == "__main__":
    main()
