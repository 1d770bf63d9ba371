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
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bank_sim.admin_client import AdminClient
from bench.people import pick_people, population_for
from bench.soak_faults import Stack, Tally, chaos, hostile_watcher
from bench.stats import percentile
from cardlookup.banks import bank_fleet
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.population import Person, Population
from client import errors
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from devstack import localstack
from hub.core.notify import OutboxTail
from hub.store.db import open_database

BANKS = 8
TYPE = {pb.CARD_TYPE_DEBIT: "debit", pb.CARD_TYPE_CREDIT: "credit"}


def truth(population: Population, person: Person, codes: list[str]) -> Counter[tuple[str, str, str, str]]:
    return Counter(
        (c.bank_code, str(c.kind), c.first_four, c.last_four)
        for code in codes
        for c in population.expected_answer(code, person.id_number).listed
    )


def seen(report: pb.Report) -> Counter[tuple[str, str, str, str]]:
    return Counter((c.bank_code, TYPE.get(c.card_type, "?"), c.first_four, c.last_four) for c in report.cards)


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
            q = await db.fetch_one("SELECT state FROM queries WHERE query_id = ?", (query_id,))
            rows = await db.fetch_all(
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
