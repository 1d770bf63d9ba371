"""Database work per query and per bank, on SQLite and on PostgreSQL.

    python -m bench.store_statements [--queries 20] [--banks 16,64]

Runs the engine in this process (the bank fleet too, on loopback, over
mTLS) against each store, submits `--queries` queries of distinct people at
each bank count, waits for every report, and prints the store's counters
(hub.store.db.StoreStats) per query: statements (reads and writes) and
write transactions. From two bank counts it fits `fixed + per_bank * banks`,
the cost a query pays once and the cost each bank adds. Healthy banks, one
attempt each; no API calls (the journey's own statements are not counted).
The PostgreSQL server is a throwaway one (cardlookup.devpg), durable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import uuid
from pathlib import Path

from bank_sim.fleet import BankFleet, FleetConfig
from bench.people import pick_people, population_for
from cardlookup.clock import SystemClock
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.pki import create_dev_pki
from hub.config import HubConfig, Timings
from hub.crypto import HubKeys
from hub.domain import NewQuery, QueryState, Subject
from hub.engine import QueryEngine
from hub.store.db import open_database


async def measure(
    store: str, banks: int, queries: int, work: Path, pg: ThrowawayPostgres | None
) -> tuple[float, float]:
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
        before = (db.stats.statements, db.stats.transactions)
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
        await asyncio.gather(*(engine.submit(n) for n in news))
        for n in news:
            while True:
                record = await engine.get(n.query_id)
                if record is not None and record.state == QueryState.READY:
                    break
                await asyncio.sleep(0.05)
        statements = (db.stats.statements - before[0]) / queries
        transactions = (db.stats.transactions - before[1]) / queries
    finally:
        await engine.stop(grace=1)
        await db.close()
        await fleet.stop(grace=0)
    return statements, transactions


async def main_async(args: argparse.Namespace) -> None:
    sizes = [int(x) for x in args.banks.split(",")]
    with tempfile.TemporaryDirectory(prefix="store-statements-") as tmp:
        work = Path(tmp)
        pg = ThrowawayPostgres.start(durable=True)
        try:
            print("store       banks  statements/query  transactions/query")
            for store in ("sqlite", "postgresql"):
                results = {}
                for banks in sizes:
                    s, t = await measure(store, banks, args.queries, work, pg if store == "postgresql" else None)
                    results[banks] = (s, t)
                    print(f"{store:<10}  {banks:>5}  {s:>16.1f}  {t:>18.1f}")
                if len(sizes) >= 2:
                    lo, hi = sizes[0], sizes[-1]
                    per_bank = (results[hi][0] - results[lo][0]) / (hi - lo)
                    per_bank_t = (results[hi][1] - results[lo][1]) / (hi - lo)
                    fixed = results[lo][0] - per_bank * lo
                    fixed_t = results[lo][1] - per_bank_t * lo
                    print(
                        f"{store:<10}  fit: {fixed:.1f} + {per_bank:.2f} x banks statements,"
                        f" {fixed_t:.1f} + {per_bank_t:.2f} x banks transactions per query"
                    )
        finally:
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--banks", default="16,64")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
