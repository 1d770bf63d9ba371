"""The fan-out benchmark: the hub against a bare grpc.aio fan-out, as the
number of banks grows.

    .venv/bin/python -m bench.fanout [--banks 16,64,256,1000] [--queries N]
        [--concurrency 8] [--duration-cap 60] [--json results.json]
        [--store sqlite|postgresql] [--watch-view changes|full]
        [--bank-latency 50-200] [--journey-costs 20] [--rss-journeys 20]
        [--bank-sessions off|on|both] [--plot docs/benchmarks-curve.png]

For each bank count: a development PKI (one directory for every size), the
bank fleet (`cardlookup-banks`, one process) and the hub (`cardlookup-hub`,
another process, with a generated config). Users are enrolled, then full
journeys run through `client.aio` (StartVerification, SMS code from the
outbox, CreateQuery with a dev face attestation, WatchQuery until READY).
The hub is then stopped and the baseline (bench/baseline.py, its own
process) does the same fan-out against the same banks for the same people.

Printed per bank count: queries/s, latency p50/p99 (create -> report ready;
for the baseline: first stream opened -> last stream read), CPU ms per query
of the hub (psutil, user + system over the measured phase) and of the
baseline client, the bank fleet's CPU ms per query, and hub/baseline
ratios; then the curve. Also (issue 10): per size the bytes each watched
query streamed and the hub's peak RSS; at the first size the hub's CPU per
journey step and its peak RSS under concurrent full journeys (bench/journey.py);
with --store postgresql the hub runs on a throwaway PostgreSQL server
(durable: fsync on); with --bank-latency every bank call waits lo..hi ms and
the slowest bank's expected latency is printed beside create -> READY; with
--plot the curve is saved as a PNG; with --bank-sessions both a second hub
(its own store, the same people) calls the banks over session streams
(issue 16), and its row and ratios follow the per-call hub's. Not a test:
nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/fanout.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fanout_phases import Plan, SizeResult, run_size
from bench.table import curve_table, session_lines, size_table
from cardlookup.banks import bank_fleet
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.pki import create_dev_pki

DEFAULT_BANKS = "16,64,256,1000"


def default_queries(banks: int) -> int:
    """Measured queries per size: about 2,000 bank streams, at least 12 and at
    most 100 queries, so that the whole curve runs in minutes on 2 cores."""
    return max(12, min(100, 2000 // banks))


def parse_latency(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    lo, _, hi = text.partition("-")
    bounds = (float(lo), float(hi or lo))
    if not 0 <= bounds[0] <= bounds[1]:
        raise ValueError("--bank-latency is LO-HI in ms, 0 <= LO <= HI")
    return bounds


def slowest_expected_ms(latency: tuple[float, float], banks: int) -> float:
    """The expected largest of `banks` uniform lo..hi latencies: what a
    fan-out that waits for its slowest bank (not the sum) should take."""
    lo, hi = latency
    return lo + (hi - lo) * banks / (banks + 1)


def plans(args: argparse.Namespace, database: Callable[[str], str | None] = lambda _: None) -> list[Plan]:
    """One plan per bank count; `database(name)` makes a PostgreSQL database
    (None: SQLite)."""
    result = []
    for i, banks in enumerate(int(b) for b in args.banks.split(",")):
        queries = args.queries or default_queries(banks)
        warmup = args.warmup if args.warmup is not None else min(args.concurrency, max(2, queries // 10))
        result.append(
            Plan(
                banks,
                queries,
                warmup,
                args.concurrency,
                args.duration_cap,
                args.hub_log_level,
                changes_only=args.watch_view == "changes",
                latency_ms=parse_latency(args.bank_latency),
                journey_costs=args.journey_costs if i == 0 else 0,
                rss_journeys=args.rss_journeys if i == 0 else 0,
                database=database(f"bench{banks}"),
                sessions=args.bank_sessions,
                session_database=database(f"bench{banks}session") if args.bank_sessions == "both" else None,
            )
        )
    return result


def extras_line(plan: Plan, r: SizeResult) -> str:
    e = r.extras
    if e is None:
        return ""
    view = "changes" if plan.changes_only else "full"
    line = (
        f"hub extras: WatchQuery {e.watch_bytes_per_query / 1024:.1f} KB/query (view {view}), "
        f"peak RSS {e.peak_rss_mb:.0f} MB, store {'postgresql' if plan.database else 'sqlite'}"
    )
    if plan.latency_ms is not None:
        slowest = slowest_expected_ms(plan.latency_ms, plan.banks)
        line += (
            f"\nbank latency {plan.latency_ms[0]:.0f}-{plan.latency_ms[1]:.0f} ms per call: slowest of {plan.banks} "
            f"expected {slowest:.0f} ms, sum {plan.banks * sum(plan.latency_ms) / 2:.0f} ms; "
            f"hub p50 create->READY {r.hub.p50_ms:.0f} ms ({r.hub.p50_ms - slowest:+.0f} ms), "
            f"baseline p50 {r.baseline.p50_ms:.0f} ms ({r.baseline.p50_ms - slowest:+.0f} ms)"
        )
    return line


async def run(args: argparse.Namespace, work_root: Path) -> list[SizeResult]:
    pki = create_dev_pki(args.pki or work_root / "pki", [b.code for b in bank_fleet(max(p.banks for p in plans(args)))])
    postgres: ThrowawayPostgres | None = None
    if args.store == "postgresql":
        postgres = await asyncio.to_thread(ThrowawayPostgres.start, durable=True)
    try:
        pg = postgres
        chosen = plans(args, pg.create_database if pg else lambda _: None)
        results = []
        for plan in chosen:
            work = work_root / f"banks-{plan.banks}"
            work.mkdir()
            print(
                f"-- {plan.banks} banks: {plan.warmup} warm-up + {plan.queries} queries per side, "
                f"concurrency {plan.concurrency}, cap {plan.cap_s:.0f} s (work dir {work})",
                flush=True,
            )
            r = await run_size(plan, pki, work)
            print(size_table(r.hub, r.baseline), flush=True)
            if r.hub_session is not None:
                print(session_lines(r.hub_session, r.hub, r.baseline), flush=True)
            if line := extras_line(plan, r):
                print(line, flush=True)
            for name, error in r.errors.items():
                print(f"   {name}: first failure: {error}", flush=True)
            results.append(r)
    finally:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)
    print(curve_table([(r.hub, r.baseline) for r in results]), flush=True)
    if args.plot:
        from bench.plot import save_curve

        title = f"cardlookup hub vs bare fan-out, {dt.date.today()}, store {args.store}, concurrency {args.concurrency}"
        save_curve([(r.hub, r.baseline) for r in results], args.plot, title)
        print(f"plot saved: {args.plot}", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--banks", default=DEFAULT_BANKS, help=f"comma-separated bank counts (default {DEFAULT_BANKS})")
    parser.add_argument("--queries", type=int, default=0, help="measured queries per side and size (default: by size)")
    parser.add_argument(
        "--warmup", type=int, help="unmeasured queries first (default: min(concurrency, queries/10), >= 2)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="queries in flight (default 8)")
    parser.add_argument(
        "--duration-cap", type=float, default=60.0, help="measured seconds per side and size at most (default 60)"
    )
    parser.add_argument("--hub-log-level", default="INFO", help="the hub's --log-level (default INFO, as deployed)")
    parser.add_argument("--pki", type=Path, help="PKI directory to create or reuse (default: in the work dir)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the hub's store (postgresql: a throwaway server, durable)",
    )
    parser.add_argument(
        "--watch-view", choices=("changes", "full"), default="changes", help="WatchQuery view the driver asks for"
    )
    parser.add_argument("--bank-latency", help="LO-HI: every bank call waits a uniform LO..HI ms (e.g. 50-200)")
    parser.add_argument(
        "--journey-costs", type=int, default=20, help="journeys timed step by step at the first size (default 20)"
    )
    parser.add_argument(
        "--rss-journeys", type=int, default=20, help="concurrent full journeys for peak RSS at the first size"
    )
    parser.add_argument(
        "--bank-sessions",
        choices=("off", "on", "both"),
        default="off",
        help="the hub calls banks per call (off), over session streams (on), or both back to back (default off)",
    )
    parser.add_argument("--plot", type=Path, help="save the curve as a PNG here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration_cap <= 0:
        parser.error("--concurrency and --duration-cap must be positive")
    work_root = Path(tempfile.mkdtemp(prefix="cardlookup-bench-"))
    try:
        results = asyncio.run(run(args, work_root))
    finally:
        if args.keep:
            print(f"work directory kept: {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "hub": r.hub.to_dict(),
                        "baseline": r.baseline.to_dict(),
                        "errors": r.errors,
                        "hub_extras": asdict(r.extras) if r.extras else None,
                        "hub_session": r.hub_session.to_dict() if r.hub_session else None,
                    }
                    for r in results
                ],
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
