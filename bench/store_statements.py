"""Database work per query and per bank, on SQLite and on PostgreSQL.

    python -m bench.store_statements [--queries 20] [--banks 16,64] [--concurrency 8] [--round-trips]

Runs the engine in this process (the bank fleet too, on loopback, over
mTLS) against each store, submits `--queries` queries of distinct people at
each bank count, `--concurrency` of them running at a time (a query holds
its place until READY: the group commit only fills when queries overlap,
so state the concurrency beside every figure), waits for every report
(told by a ready listener, not by polling the store), and prints the store's counters
(hub.store.db.StoreStats) per query: statements (reads and writes) and
write transactions. From two bank counts it fits `fixed + per_bank * banks`,
the cost a query pays once and the cost each bank adds. Healthy banks, one
attempt each; no API calls (the journey's own statements are not counted).
The PostgreSQL server is a throwaway one (cardlookup.devpg), durable.

`--round-trips` also counts, on PostgreSQL, the hub's round trips to the
server per query: every asyncpg `Connection` call that sends something and
waits for the answer (statements, BEGIN and COMMIT, a pool's reset on
release), counted by wrapping those methods for the run. A prepared
statement's first use on a connection costs one more, not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from bank_sim.fleet import BankFleet, FleetConfig
from bench.people import pick_people, population_for
from cardlookup.clock import SystemClock
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.pki import create_dev_pki
from hub.core.config import HubConfig, Timings
from hub.core.domain import NewQuery, QueryRecord, Subject
from hub.engine import QueryEngine
from hub.keys.crypto import HubKeys
from hub.store.db import open_database

_SENDING = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


@contextlib.contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Counts asyncpg round trips while active: yields a one-item list."""
    count = [0]
    originals = {name: getattr(asyncpg.Connection, name) for name in _SENDING}

    def counted(original: Any) -> Any:
        async def call(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return await original(self, *args, **kwargs)

        return call

    for name, original in originals.items():
        setattr(asyncpg.Connection, name, counted(original))
    try:
        yield count
    finally:
        for name, original in originals.items():
            setattr(asyncpg.Connection, name, original)


async def measure(
    store: str,
    banks: int,
    queries: int,
    work: Path,
    pg: ThrowawayPostgres | None,
    trips: list[int] | None = None,
    concurrency: int = 8,
) -> tuple[float, float, float | None]:
    """Statements, write transactions and (with `trips`, a running
    `counting_round_trips` count) round trips per query."""
    from cardlookup.banks import bank_fleet

    codes = [b.code for b in bank_fleet(banks)]
    pki = create_dev_pki(work / f"pki-{banks}", codes)
    today = dt.datetime.now(dt.UTC).date()
    population = population_for(queries, banks, today)
    people = pick_people(population, queries, today)
    fleet = BankFleet(FleetConfig.default(pki, population, count=banks, admin_port=None))
    await fleet.start()
    database: str | Path = pg.create_database(f"s{banks}") if pg is not None else work / f"{store}-{banks}" / "hub.db"
    config = HubConfig.dev(pki, fleet.addresses, work / f"{store}-{banks}", database=database, timings=Timings())
    db = await open_database(config.database)
    engine = QueryEngine(config, db, HubKeys.load(config), SystemClock())
    try:
        await engine.start()
        before = (db.stats.statements, db.stats.transactions, trips[0] if trips else 0)
        news = [
            NewQuery(
                str(uuid.uuid4()),
                p.user_id,
                Subject(p.full_name, p.id_number),
                tuple(codes),
                config.consent_text_version,
            )
            for p in people
        ]
        ready: dict[str, asyncio.Event] = {n.query_id: asyncio.Event() for n in news}

        async def told(record: QueryRecord) -> None:
            ready[record.query_id].set()

        engine.add_ready_listener(told)
        gate = asyncio.Semaphore(concurrency)

        async def run(n: NewQuery) -> None:
            async with gate:
                await engine.submit(n)
                await ready[n.query_id].wait()

        await asyncio.gather(*(run(n) for n in news))
        statements = (db.stats.statements - before[0]) / queries
        round_trips = (trips[0] - before[2]) / queries if trips else None
        transactions = (db.stats.transactions - before[1]) / queries
    finally:
        await engine.stop(grace=1)
        await db.close()
        await fleet.stop(grace=0)
    return statements, transactions, round_trips


async def main_async(args: argparse.Namespace) -> None:
    sizes = [int(x) for x in args.banks.split(",")]
    with tempfile.TemporaryDirectory(prefix="store-statements-") as tmp:
        work = Path(tmp)
        pg = ThrowawayPostgres.start(durable=True)
        try:
            print(f"{args.queries} queries per bank count, {args.concurrency} at a time")
            print("store       banks  statements/query  transactions/query  round trips/query")
            for store in ("sqlite", "postgresql"):
                results = {}
                for banks in sizes:
                    on_pg = store == "postgresql"
                    with counting_round_trips() if on_pg and args.round_trips else contextlib.nullcontext() as trips:
                        s, t, r = await measure(
                            store, banks, args.queries, work, pg if on_pg else None, trips, args.concurrency
                        )
                    results[banks] = (s, t, r)
                    shown = f"{r:>19.1f}" if r is not None else f"{'-':>19}"
                    print(f"{store:<10}  {banks:>5}  {s:>16.1f}  {t:>18.1f}  {shown}")
                if len(sizes) >= 2:
                    lo, hi = sizes[0], sizes[-1]
                    fits = []
                    for i, what in enumerate(("statements", "transactions", "round trips")):
                        low, high = results[lo][i], results[hi][i]
                        if low is None or high is None:
                            continue
                        per_bank = (high - low) / (hi - lo)
                        fits.append(f"{low - per_bank * lo:.1f} + {per_bank:.2f} x banks {what}")
                    print(f"{store:<10}  fit: {', '.join(fits)} per query")
        finally:
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--banks", default="16,64")
    parser.add_argument("--concurrency", type=int, default=8, help="queries running at a time")
    parser.add_argument("--round-trips", action="store_true", help="also count the round trips to PostgreSQL per query")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
