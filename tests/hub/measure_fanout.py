"""Measures the engine (not a test): 16-bank queries over real mTLS against
an in-process bank_sim fleet, end to end (submit -> READY), and how many
store transactions the batched writer used.

    .venv/bin/python -m tests.hub.measure_fanout [--queries 50] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import SystemClock
from cardlookup.pki import create_dev_pki
from cardlookup.population import Population
from hub.engine import QueryEngine
from hub.keys.crypto import HubKeys
from hub.store.db import open_database
from tests.hub.helpers import hub_config, new_query, wait_for


async def measure(queries: int, concurrency: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="hub-measure-"))
    pki = create_dev_pki(root / "pki", DEFAULT_BANK_CODES)
    population = Population()
    clock = SystemClock()
    people = population.eligible_people(clock.now().date())
    async with BankFleet(FleetConfig.default(pki, population, clock=clock, admin_port=None)) as fleet:
        config = hub_config(pki, fleet.addresses, root / "data")
        db = await open_database(config.database)
        engine = QueryEngine(config, db, HubKeys.load(config), clock)
        await engine.start()
        try:
            # One warm-up query opens the 16 channels (TLS handshakes).
            warm = new_query(people[0], DEFAULT_BANK_CODES)
            await engine.submit(warm)
            await wait_for(engine, warm.query_id)

            single_start = time.perf_counter()
            one = new_query(people[1], DEFAULT_BANK_CODES)
            await engine.submit(one)
            await wait_for(engine, one.query_id)
            single_ms = (time.perf_counter() - single_start) * 1000

            latencies: list[float] = []
            gate = asyncio.Semaphore(concurrency)
            batches_before = db.batches_committed

            async def run(i: int) -> None:
                async with gate:
                    q = new_query(people[(i + 2) % len(people)], DEFAULT_BANK_CODES, user_id=f"m{i}")
                    t0 = time.perf_counter()
                    await engine.submit(q)
                    await wait_for(engine, q.query_id)
                    latencies.append((time.perf_counter() - t0) * 1000)

            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(run(i) for i in range(queries)))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            batches = db.batches_committed - batches_before
            latencies.sort()
            print(f"single 16-bank query, end to end (warm channels): {single_ms:.1f} ms")
            print(f"{queries} queries x 16 banks, concurrency {concurrency}: {queries / wall:.1f} queries/s")
            print(
                f"  latency p50 {statistics.median(latencies):.1f} ms, "
                f"p99 {latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms"
            )
            print(f"  process CPU (hub + in-process banks): {cpu * 1000 / queries:.1f} ms per query")
            writes = queries * (1 + 16)  # submit + one final write per bank (+ report, attempts)
            print(f"  store transactions: {batches} for at least {writes} writes ({writes / batches:.1f} per commit)")
        finally:
            await engine.stop()
            await db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(measure(args.queries, args.concurrency))


if __name__ == "__main__":
    main()
