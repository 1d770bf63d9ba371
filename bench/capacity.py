"""What one PostgreSQL primary and the hub replicas can carry (issue 16).

    python -m bench.capacity [--banks 16,256] [--queries 40] [--concurrency 8] [--bank-sessions off|on]

Per bank count: the bank fleet runs as its own process (`cardlookup-banks`),
the hub's engine runs in this process against a throwaway PostgreSQL server
(durable: fsync on), and `--queries` queries of distinct people run,
`--concurrency` at a time (each holds its place until READY), after a
warm-up. Measured per query over that phase:

- the PostgreSQL server's CPU: user + system of the postmaster and all its
  processes (psutil), which is what the primary pays;
- the hub's CPU: this process (the engine, its bank calls and its store
  client; not the API's journey work, measured by bench.fanout);
- round trips to the server (bench.store_statements' counter) and write
  transactions (hub.store.db.StoreStats).

From the two bank counts it fits `fixed + per_bank x banks` for each, and
prints the capacity table of docs/deployment.md: for 10, 100 and 1,000
queries/s at 16, 256 and 1,000 banks, the primary's cores (server CPU per
query x queries/s) and the hub replicas (one busy core each: the engine is
one asyncio loop), and what bounds the cell: the primary's CPU when it
needs more cores than the hub needs replicas, the hub's CPU (more
replicas) otherwise, or the primary itself beyond 32 cores. A figure, not a
promise: one machine, the simulator's banks, no API traffic.

`--bank-sessions on` puts every bank of the registry on `session = "on"`:
the engine's calls go over one session stream per bank (issue 16 item 4)
instead of one ListCards call per bank per query.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import math
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from bench import processes
from bench.people import pick_people, population_for
from bench.store_statements import counting_round_trips
from cardlookup.clock import SystemClock
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.pki import create_dev_pki
from devstack import localstack
from hub.core.config import HubConfig
from hub.core.domain import NewQuery, QueryRecord, Subject
from hub.engine import QueryEngine
from hub.keys.crypto import HubKeys
from hub.process.main import tune_gc
from hub.store.db import open_database

RATES = (10, 100, 1000)
SIZES = (16, 256, 1000)
WARM_UP = 4
PRIMARY_CORES = 32
"""The largest primary the table assumes (one machine)."""


def server_cpu(pg: ThrowawayPostgres) -> float:
    """CPU seconds (user + system) of the server's processes so far."""
    pid = int((pg.data / "postmaster.pid").read_text().split()[0])
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def hub_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


async def measure(
    banks: int, queries: int, concurrency: int, work: Path, pg: ThrowawayPostgres, session: str = "off"
) -> dict[str, float]:
    from cardlookup.banks import bank_fleet

    today = dt.datetime.now(dt.UTC).date()
    total = queries + WARM_UP
    codes = [b.code for b in bank_fleet(banks)]
    pki = create_dev_pki(work / f"pki-{banks}", codes)
    population = population_for(total, banks, today)
    people = pick_people(population, total, today)
    bank_work = work / f"banks-{banks}"
    bank_work.mkdir(parents=True)
    bank_proc, addresses = processes.start_banks(pki, banks, population.size, bank_work)
    try:
        await processes.wait_for_file(addresses, bank_proc, "cardlookup-banks", bank_work / "banks.log")
        config = HubConfig.dev(
            pki,
            localstack.read_addresses(addresses),
            work / f"hub-{banks}",
            database=pg.create_database(f"c{banks}"),
            timings=processes.HUB_TIMINGS,
        )
        config = dataclasses.replace(config, banks=tuple(dataclasses.replace(b, session=session) for b in config.banks))
        db = await open_database(config.database)
        engine = QueryEngine(config, db, HubKeys.load(config), SystemClock())
        ready: dict[str, asyncio.Event] = {}

        async def told(record: QueryRecord) -> None:
            ready[record.query_id].set()

        engine.add_ready_listener(told)

        async def run_all(chosen: list[NewQuery]) -> None:
            gate = asyncio.Semaphore(concurrency)

            async def one(n: NewQuery) -> None:
                async with gate:
                    ready[n.query_id] = asyncio.Event()
                    await engine.submit(n)
                    await ready[n.query_id].wait()

            await asyncio.gather(*(one(n) for n in chosen))

        news = [
            NewQuery(str(uuid.uuid4()), p.user_id, Subject(p.full_name, p.id_number), tuple(codes), "2022-03-01")
            for p in people
        ]
        try:
            await engine.start()
            tune_gc()  # as cardlookup-hub does once started
            await run_all(news[:WARM_UP])
            with counting_round_trips() as trips:
                before = (server_cpu(pg), hub_cpu(), trips[0], db.stats.transactions, time.perf_counter())
                await run_all(news[WARM_UP:])
                after = (server_cpu(pg), hub_cpu(), trips[0], db.stats.transactions, time.perf_counter())
        finally:
            await engine.stop(grace=1)
            await db.close()
    finally:
        await asyncio.to_thread(localstack.stop, bank_proc)
    d = [b - a for a, b in zip(before, after, strict=True)]
    return {
        "server_ms": d[0] * 1000 / queries,
        "hub_ms": d[1] * 1000 / queries,
        "round_trips": d[2] / queries,
        "transactions": d[3] / queries,
        "queries_per_s": queries / d[4],
    }


def fit(results: dict[int, dict[str, float]], key: str) -> tuple[float, float]:
    lo, hi = min(results), max(results)
    per_bank = (results[hi][key] - results[lo][key]) / (hi - lo)
    return results[lo][key] - per_bank * lo, per_bank


def capacity_table(results: dict[int, dict[str, float]]) -> str:
    server = fit(results, "server_ms")
    hub = fit(results, "hub_ms")
    lines = [
        "| queries/s | banks | primary CPU ms/query | primary cores | hub CPU ms/query | hub replicas | bound by |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for banks in SIZES:
        s = max(0.0, server[0] + server[1] * banks)
        h = max(0.0, hub[0] + hub[1] * banks)
        for rate in RATES:
            cores = s * rate / 1000
            replicas = math.ceil(h * rate / 1000)
            if cores > PRIMARY_CORES:
                bound = f"the primary (over {PRIMARY_CORES} cores)"
            elif replicas > cores:
                bound = "hub CPU (replicas scale out)"
            else:
                bound = "primary CPU"
            lines.append(f"| {rate:,} | {banks:,} | {s:.1f} | {cores:.1f} | {h:.1f} | {replicas} | {bound} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    sizes = [int(x) for x in args.banks.split(",")]
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        pg = ThrowawayPostgres.start(durable=True)
        try:
            print(
                f"{args.queries} queries per bank count, {args.concurrency} at a time, after {WARM_UP} warm-up"
                f", bank sessions {args.bank_sessions}"
            )
            print("banks  server CPU ms/q  hub CPU ms/q  round trips/q  transactions/q  queries/s")
            for banks in sizes:
                r = await measure(banks, args.queries, args.concurrency, Path(tmp), pg, args.bank_sessions)
                results[banks] = r
                print(
                    f"{banks:>5}  {r['server_ms']:>15.2f}  {r['hub_ms']:>12.1f}  {r['round_trips']:>13.1f}"
                    f"  {r['transactions']:>14.1f}  {r['queries_per_s']:>9.1f}"
                )
        finally:
            pg.stop()
    if len(results) >= 2:
        for key, what in (("server_ms", "server CPU ms"), ("hub_ms", "hub CPU ms"), ("round_trips", "round trips")):
            fixed, per_bank = fit(results, key)
            print(f"fit: {fixed:.2f} + {per_bank:.4f} x banks {what} per query")
        print()
        print(capacity_table(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--banks", default="16,256")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bank-sessions", choices=("off", "on"), default="off")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
