"""asyncpg against psycopg 3 (async) on the store's kind of work: why the
PostgreSQL store uses asyncpg (issue 8).

    pip install 'psycopg[binary]==3.3.9'    # only for this comparison
    python -m bench.pgdriver [--transactions 3000] [--concurrency 10]

Against one throwaway PostgreSQL (durable), each driver runs the same mix
the fan-out sends per bank outcome, as one transaction each: lock a query
row (UPDATE), a fenced UPDATE of a bank task with a 200-byte sealed answer,
a COUNT of the pending tasks, and a pg_notify; `--concurrency` of them at
a time from a pool of 10 connections. Printed per driver: transactions per
second and this process's CPU per transaction (the hub's cost). A figure,
not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import asyncpg

from cardlookup.devpg import ThrowawayPostgres

SETUP = [
    "CREATE TABLE q (id BIGINT PRIMARY KEY, state TEXT NOT NULL)",
    "CREATE TABLE t (q BIGINT NOT NULL, b TEXT NOT NULL, state TEXT NOT NULL, epoch BIGINT NOT NULL,"
    " answer BYTEA, PRIMARY KEY (q, b))",
]
BANKS = [f"{100 + i}" for i in range(16)]


async def setup(url: str, queries: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in SETUP:
            await conn.execute(statement)
        await conn.executemany("INSERT INTO q VALUES ($1, 'RUNNING')", [(i,) for i in range(queries)])
        await conn.executemany(
            "INSERT INTO t VALUES ($1, $2, 'PENDING', 1, NULL)", [(i, b) for i in range(queries) for b in BANKS]
        )
    finally:
        await conn.close()


def cpu() -> float:
    t = os.times()
    return t.user + t.system


async def with_asyncpg(url: str, jobs: list[tuple[int, str]], concurrency: int) -> tuple[float, float]:
    pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
    gate = asyncio.Semaphore(concurrency)
    answer = os.urandom(200)

    async def one(q: int, b: str) -> None:
        async with gate, pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE q SET state = $1 WHERE id = $2", "RUNNING", q)
            await conn.execute(
                "UPDATE t SET state = $1, answer = $2 WHERE q = $3 AND b = $4 AND epoch = $5", "DONE", answer, q, b, 1
            )
            await conn.fetchval("SELECT COUNT(*) FROM t WHERE q = $1 AND state = $2", q, "PENDING")
            await conn.execute("SELECT pg_notify($1, $2)", "p", f"{q}:{b}")

    c0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(one(q, b) for q, b in jobs))
    result = time.perf_counter() - t0, cpu() - c0
    await pool.close()
    return result


async def with_psycopg(url: str, jobs: list[tuple[int, str]], concurrency: int) -> tuple[float, float]:
    from psycopg_pool import AsyncConnectionPool

    pool: Any = AsyncConnectionPool(url, min_size=10, max_size=10, open=False)
    await pool.open()
    gate = asyncio.Semaphore(concurrency)
    answer = os.urandom(200)

    async def one(q: int, b: str) -> None:
        async with gate, pool.connection() as conn, conn.transaction():
            await conn.execute("UPDATE q SET state = %s WHERE id = %s", ("RUNNING", q))
            await conn.execute(
                "UPDATE t SET state = %s, answer = %s WHERE q = %s AND b = %s AND epoch = %s", ("DONE", answer, q, b, 1)
            )
            cur = await conn.execute("SELECT COUNT(*) FROM t WHERE q = %s AND state = %s", (q, "PENDING"))
            await cur.fetchone()
            await conn.execute("SELECT pg_notify(%s, %s)", ("p", f"{q}:{b}"))

    c0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(one(q, b) for q, b in jobs))
    result = time.perf_counter() - t0, cpu() - c0
    await pool.close()
    return result


async def main_async(args: argparse.Namespace) -> None:
    queries = max(1, args.transactions // len(BANKS))
    jobs = [(q, b) for q in range(queries) for b in BANKS]
    with ThrowawayPostgres.start(durable=True) as pg:
        results = {}
        for name, run in (("asyncpg", with_asyncpg), ("psycopg", with_psycopg)):
            url = pg.create_database(f"d_{name}")
            await setup(url, queries)
            try:
                wall, used = await run(url, jobs, args.concurrency)
            except ImportError:
                print(f"{name}: not installed (pip install 'psycopg[binary]==3.3.9' psycopg-pool)")
                continue
            results[name] = (wall, used)
            print(
                f"{name:<8} {len(jobs)} transactions  {len(jobs) / wall:8.0f} tx/s"
                f"  client CPU {used * 1e6 / len(jobs):7.0f} us/tx",
                flush=True,
            )
        if len(results) == 2:
            (wa, ca), (wp, cp) = results["asyncpg"], results["psycopg"]
            print(f"asyncpg/psycopg: {wp / wa:.2f}x the throughput, {ca / cp:.2f}x the client CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
