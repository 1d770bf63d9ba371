"""What account closure and the retention sweep cost the store (issue 22).

    python -m bench.erasure [--users 20000] [--closures 20]

Fills each store (SQLite in a temporary directory; a throwaway durable
PostgreSQL, cardlookup.devpg) with `--users` users, two expired lookups of
three banks and two SMS verifications each, then times: one retention sweep
with nothing due (the sweeper's cost every `sweep_interval`), `--closures`
closures one after the other (`ErasureStore.erase_user`), and what follows
them: on SQLite the WAL checkpoint after each closure, on PostgreSQL the one
rewrite of the user-id tables (`VACUUM FULL`) the next sweep does for all of
them. Prints one line per store.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from cardlookup.devpg import ThrowawayPostgres
from hub.store.db import Conn, Database, open_database, to_micros
from hub.store.erasure import ErasureStore, Retention

NOW = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
KEEP = Retention(*(dt.timedelta(days=180),) * 4, dt.timedelta(days=2), dt.timedelta(days=7))


async def _fill(db: Database, users: int) -> None:
    t = to_micros(NOW)

    async def run(conn: Conn) -> None:
        await conn.executemany(
            "INSERT INTO users VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(f"u{i}", f"h{i}", b"k" * 60, b"c" * 120, "138****0000", "110000", None, "x" * 97, 0, None, t, t)
             for i in range(users)],
        )  # fmt: skip
        queries = [(f"q{i}-{j}", f"u{i}") for i in range(users) for j in range(2)]
        await conn.executemany(
            "INSERT INTO queries (query_id, user_id, state, bank_codes, consent_text_version, create_time,"
            " report_due_time) VALUES (?, ?, 'EXPIRED', '102,103,104', 'v1', ?, ?)",
            [(q, u, t, t) for q, u in queries],
        )
        await conn.executemany(
            "INSERT INTO bank_tasks (query_id, bank_code, position, state) VALUES (?, ?, ?, 'ANSWERED')",
            [(q, b, k) for q, _ in queries for k, b in enumerate(("102", "103", "104"))],
        )
        await conn.executemany(
            "INSERT INTO verifications (verification_id, user_id, code_hash, create_time, expire_time, person_hash,"
            " phone_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(f"v{q}", u, "c" * 64, t, t, "p" * 64, "f" * 64) for q, u in queries],
        )

    await db.write(run)


async def measure(target: str | Path, users: int, closures: int) -> str:
    db = await open_database(target)
    try:
        erasure = ErasureStore(db)
        await erasure.migrate_with_erased_tables()
        await _fill(db, users)
        started = time.perf_counter()
        await erasure.sweep(NOW + dt.timedelta(days=1), KEEP)
        sweep = time.perf_counter() - started
        erase, purge = [], []
        for i in range(closures):
            started = time.perf_counter()
            await erasure.erase_user(f"u{i}", NOW, NOW + dt.timedelta(days=7))
            erase.append(time.perf_counter() - started)
            started = time.perf_counter()
            await erasure.purge_copies()
            purge.append(time.perf_counter() - started)
        started = time.perf_counter()
        compacted = await erasure.compact_after_closures()
        compaction = time.perf_counter() - started
        return (
            f"{db.dialect}: {users} users; sweep with nothing due {sweep * 1e3:.1f} ms;"
            f" closure median {statistics.median(erase) * 1e3:.1f} ms (max {max(erase) * 1e3:.1f});"
            f" purge after each (SQLite: WAL checkpoint) median {statistics.median(purge) * 1e3:.1f} ms;"
            f" rewrite after {compacted} closures {compaction * 1e3:.0f} ms"
        )
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--closures", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(asyncio.run(measure(Path(tmp) / "hub.db", args.users, args.closures)))
    server = ThrowawayPostgres.start(durable=True)
    try:
        print(asyncio.run(measure(server.create_database("erasure"), args.users, args.closures)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
