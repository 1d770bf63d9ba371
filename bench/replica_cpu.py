"""Hub CPU per query with one and with three replicas on PostgreSQL, beside
one hub on SQLite (issue 8).

    python -m bench.replica_cpu [--journeys 30] [--concurrency 10] [--banks 16]

For each set-up (SQLite x 1, PostgreSQL x 1, PostgreSQL x 3): a throwaway
PostgreSQL database (durable) where needed, the bank fleet in this process,
the hub replicas as processes (devstack.replicastack), the users enrolled
first (EnrollUser's argon2id is not measured), then `--journeys` journeys
spread over the replicas (devstack.spread: StartVerification, the SMS code,
CreateQuery, WatchQuery until READY, GetReport with the payment password).
Printed: the replicas' CPU (psutil, user + system, all replica processes
added up) per journey over the measured phase, and the wall time. A figure,
not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path

import psutil

from bank_sim.fleet import BankFleet, FleetConfig
from bench.people import pick_people, population_for
from cardlookup.banks import bank_fleet
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.pki import create_dev_pki
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from devstack.replicastack import ReplicaSet
from devstack.spread import JourneyPlan, Spread, full_journey
from hub.core.config import DEFAULT_CONSENT_TEXT_VERSION
from hub.core.notify import OutboxTail


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


async def one_setup(label: str, database: str | Path, count: int, args: argparse.Namespace, work: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    codes = [b.code for b in bank_fleet(args.banks)]
    population = population_for(args.journeys, args.banks, today)
    people = pick_people(population, args.journeys, today)
    pki = create_dev_pki(work / "pki", codes)
    async with BankFleet(FleetConfig.default(pki, population, count=args.banks, admin_port=None)) as fleet:
        replicas = ReplicaSet(pki, fleet.addresses, str(database), work / "replicas", count=count)
        try:
            await asyncio.to_thread(replicas.start_all)
            clients = {n: AsyncCardLookupClient(replicas.client_options(n)) for n in replicas.names}
            try:
                first = clients[replicas.names[0]]
                for person in people:
                    await first.enroll_user(**person.enrolment())
                spread = Spread(clients)
                plan = JourneyPlan(
                    DevFaceProvider.from_file(pki.face_provider_key),
                    OutboxTail(replicas.outbox),
                    DEFAULT_CONSENT_TEXT_VERSION,
                )
                pids = [r.process.pid for r in replicas.replicas.values() if r.process is not None]
                gate = asyncio.Semaphore(args.concurrency)

                async def journey(i: int) -> None:
                    async with gate:
                        await full_journey(spread, plan, i, people[i], codes)

                cpu0, t0 = cpu_of(pids), time.perf_counter()
                await asyncio.gather(*(journey(i) for i in range(len(people))))
                cpu, wall = cpu_of(pids) - cpu0, time.perf_counter() - t0
            finally:
                for client in clients.values():
                    await client.close()
        finally:
            replicas.stop_all()
    print(
        f"{label:<16} {count} replica(s)  {len(people)} journeys  hub CPU {cpu * 1000 / len(people):7.1f} ms/journey"
        f"  wall {wall:6.1f} s",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="replica-cpu-") as tmp, ThrowawayPostgres.start(durable=True) as pg:
        root = Path(tmp)
        await one_setup("sqlite", root / "sqlite" / "hub.db", 1, args, root / "sqlite")
        await one_setup("postgresql", pg.create_database("one"), 1, args, root / "pg1")
        await one_setup("postgresql", pg.create_database("three"), 3, args, root / "pg3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--journeys", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--banks", type=int, default=16)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
