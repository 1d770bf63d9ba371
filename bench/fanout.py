"""The fan-out benchmark: the hub against a bare grpc.aio fan-out, as the
number of banks grows.

    /work/venv/bin/python -m bench.fanout [--banks 16,64,256,1000] [--queries N]
        [--concurrency 8] [--duration-cap 60] [--json results.json]

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
ratios; then the curve. Not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/fanout.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import processes
from bench.hub_driver import HubQueryDriver, enrol
from bench.people import pick_people, population_for
from bench.phase import CpuMeter, run_phase
from bench.stats import PhaseResult, summarize
from bench.table import curve_table, size_table
from cardlookup.banks import bank_fleet
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.population import Person
from client import localstack
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from hub.notify import OutboxTail

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BANKS = "16,64,256,1000"


def default_queries(banks: int) -> int:
    """Measured queries per size: about 2,000 bank streams, at least 12 and at
    most 100 queries, so that the whole curve runs in minutes on 2 cores."""
    return max(12, min(100, 2000 // banks))


@dataclass(frozen=True)
class Plan:
    banks: int
    queries: int
    warmup: int
    concurrency: int
    cap_s: float
    hub_log_level: str


@dataclass(frozen=True)
class SizeResult:
    hub: PhaseResult
    baseline: PhaseResult
    errors: dict[str, str]


async def hub_phase(
    plan: Plan, pki: PkiPaths, banks: dict[str, str], bank_pid: int, work: Path, people: list[Person]
) -> tuple[PhaseResult, str]:
    port = localstack.free_port()
    config = work / "hub.toml"
    processes.write_hub_config(config, pki, port, banks, work)
    hub = processes.start_hub(config, plan.hub_log_level, work)
    try:
        options = ClientOptions.from_pki(pki.root, f"127.0.0.1:{port}", create_timeout_s=120.0)
        async with AsyncCardLookupClient(options) as client:
            await client.wait_ready(localstack.START_TIMEOUT_S)
            await enrol(client, people)
            listed = await client.list_banks(people[0].user_id)
            driver = HubQueryDriver(
                client,
                OutboxTail(work / "sms-outbox.jsonl"),
                DevFaceProvider.from_file(pki.face_provider_key),
                list(banks),
                listed.consent_text_version,
            )
            meters = [CpuMeter(hub.pid), CpuMeter(bank_pid)]
            outcome = await run_phase(
                people,
                warmup=plan.warmup,
                concurrency=plan.concurrency,
                cap_s=plan.cap_s,
                one=driver.query,
                meters=meters,
            )
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited during the run:\n{localstack.log_tail(work / 'hub.log')}")
    finally:
        localstack.stop(hub)
    result = summarize(
        "hub",
        plan.banks,
        plan.concurrency,
        outcome.latencies_s,
        outcome.failed,
        outcome.wall_s,
        meters[0].seconds,
        meters[1].seconds,
    )
    return result, outcome.first_error


async def baseline_phase(
    plan: Plan, pki: PkiPaths, addresses: Path, bank_pid: int, population_size: int, on: dt.date, work: Path
) -> tuple[PhaseResult, str]:
    out = work / "baseline.json"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.baseline",
        "--pki",
        str(pki.root),
        "--addresses",
        str(addresses),
        "--bank-pid",
        str(bank_pid),
        "--population-size",
        str(population_size),
        "--on",
        on.isoformat(),
        "--queries",
        str(plan.queries),
        "--warmup",
        str(plan.warmup),
        "--concurrency",
        str(plan.concurrency),
        "--cap",
        str(plan.cap_s),
        "--json-out",
        str(out),
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"the baseline failed ({child.returncode}):\n{stderr.decode(errors='replace')[-2000:]}")
    raw = json.loads(out.read_text())
    return PhaseResult.from_dict(raw["result"]), raw["first_error"]


async def run_size(plan: Plan, pki: PkiPaths, work: Path) -> SizeResult:
    on = dt.datetime.now(dt.UTC).date()
    population = population_for(plan.warmup + plan.queries, plan.banks, on)
    people = pick_people(population, plan.warmup + plan.queries, on)
    bank_proc, addresses = processes.start_banks(pki, plan.banks, population.size, work)
    try:
        await processes.wait_for_file(addresses, bank_proc, "cardlookup-banks", work / "banks.log")
        banks = localstack.read_addresses(addresses)
        hub, hub_error = await hub_phase(plan, pki, banks, bank_proc.pid, work, people)
        base, base_error = await baseline_phase(plan, pki, addresses, bank_proc.pid, population.size, on, work)
        if bank_proc.poll() is not None:
            raise RuntimeError(f"the banks exited during the run:\n{localstack.log_tail(work / 'banks.log')}")
    finally:
        localstack.stop(bank_proc)
    errors = {name: e for name, e in (("hub", hub_error), ("baseline", base_error)) if e}
    return SizeResult(hub, base, errors)


def plans(args: argparse.Namespace) -> list[Plan]:
    result = []
    for banks in (int(b) for b in args.banks.split(",")):
        queries = args.queries or default_queries(banks)
        warmup = args.warmup if args.warmup is not None else min(args.concurrency, max(2, queries // 10))
        result.append(Plan(banks, queries, warmup, args.concurrency, args.duration_cap, args.hub_log_level))
    return result


async def run(args: argparse.Namespace, work_root: Path) -> list[SizeResult]:
    pki = create_dev_pki(args.pki or work_root / "pki", [b.code for b in bank_fleet(max(p.banks for p in plans(args)))])
    results = []
    for plan in plans(args):
        work = work_root / f"banks-{plan.banks}"
        work.mkdir()
        print(
            f"-- {plan.banks} banks: {plan.warmup} warm-up + {plan.queries} queries per side, "
            f"concurrency {plan.concurrency}, cap {plan.cap_s:.0f} s (work dir {work})",
            flush=True,
        )
        r = await run_size(plan, pki, work)
        print(size_table(r.hub, r.baseline), flush=True)
        for name, error in r.errors.items():
            print(f"   {name}: first failure: {error}", flush=True)
        results.append(r)
    print(curve_table([(r.hub, r.baseline) for r in results]), flush=True)
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
                [{"hub": r.hub.to_dict(), "baseline": r.baseline.to_dict(), "errors": r.errors} for r in results],
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
