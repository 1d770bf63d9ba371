"""The hub's bank calls alone, per call against over session streams
(issue 16 item 4): the transport and validation share of the hub's cost.

    .venv/bin/python -m bench.bank_calls [--banks 16] [--queries 300]
        [--concurrency 8] [--rounds 2]

The bank fleet (`cardlookup-banks`) runs as its own process. This process
then fans queries out through the hub's own attempt code
(`hub.fanout.channels.BankChannels.attempt`: channels, per-call ListCards or
the session's exchanges, answer validation), with no store, engine or API:
each query is one attempt per bank, `--concurrency` queries in flight. The
modes alternate, `--rounds` times each, back to back against the same
banks, the requests signed beforehand. Printed per mode: queries/s, the
fan-out's latency p50/p99 (first attempt sent -> last answer validated),
this process's CPU ms per query (user + system), the fleet's, and the ratios.
Not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import processes
from bench.people import pick_people, population_for
from bench.phase import CpuMeter
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.banks import bank_fleet
from cardlookup.consent import list_cards_request
from cardlookup.pki import CONSENT_KEY_ID, create_dev_pki, load_ed25519_private
from cardlookup.population import Person
from devstack import localstack
from hub.core.config import HubConfig
from hub.fanout.caller import Answered
from hub.fanout.channels import BankChannels
from hub.fanout.policy import BankCallPolicy


@dataclasses.dataclass(frozen=True)
class ModeResult:
    mode: str
    queries: int
    failed: int
    wall_s: float
    cpu_s: float
    bank_cpu_s: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def qps(self) -> float:
        return self.queries / self.wall_s

    def row(self) -> str:
        per = 1000 / self.queries
        return (
            f"{self.mode:<10}{self.qps:>10.1f}{self.p50_ms:>9.1f}{self.p99_ms:>9.1f}{self.cpu_s * per:>12.2f}"
            f"{self.bank_cpu_s * per:>15.2f}{self.queries:>7}{self.failed:>7}"
        )


async def run_mode(
    channels: BankChannels,
    config: HubConfig,
    mode: str,
    queries: list[list[bank_pb.ListCardsRequest]],
    concurrency: int,
    bank_pid: int,
) -> ModeResult:
    endpoints = [dataclasses.replace(b, session=mode) for b in config.banks]
    failed = 0
    pending = iter(queries)
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal failed
        for requests in pending:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(channels.attempt(e, r, 120.0) for e, r in zip(endpoints, requests, strict=True))
            )
            latencies.append(time.perf_counter() - started)
            failed += sum(1 for r in results if not isinstance(r, Answered))

    meters = [CpuMeter(os.getpid()), CpuMeter(bank_pid)]
    for m in meters:
        m.start()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    for m in meters:
        m.stop()
    name = "session" if mode == "on" else "per-call"
    ordered = sorted(latencies)
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.99))
    return ModeResult(name, len(queries), failed, wall, meters[0].seconds, meters[1].seconds, p50, p99)


def signed_queries(
    config: HubConfig, pki_key: Path, people: list[Person], count: int
) -> list[list[bank_pb.ListCardsRequest]]:
    key = load_ed25519_private(pki_key)
    now = dt.datetime.now(dt.UTC)
    out = []
    for i in range(count):
        person = people[i % len(people)]
        qid = str(uuid.uuid4())
        out.append(
            [
                list_cards_request(
                    key,
                    CONSENT_KEY_ID,
                    query_id=qid,
                    bank_code=b.code,
                    id_number=person.id_number,
                    full_name=person.full_name,
                    issue_time=now,
                    expire_time=now + dt.timedelta(hours=24),
                    consent_text_version="2022-03-01",
                )
                for b in config.banks
            ]
        )
    return out


async def run(args: argparse.Namespace, work: Path) -> list[ModeResult]:
    pki = create_dev_pki(work / "pki", [b.code for b in bank_fleet(args.banks)])
    on = dt.datetime.now(dt.UTC).date()
    population = population_for(min(args.queries, 200), args.banks, on)
    people = pick_people(population, min(args.queries, 200), on)
    bank_proc, addresses = processes.start_banks(pki, args.banks, population.size, work)
    try:
        await processes.wait_for_file(addresses, bank_proc, "cardlookup-banks", work / "banks.log")
        config = HubConfig.dev(pki, localstack.read_addresses(addresses), work)
        channels = BankChannels(config.bank_tls, BankCallPolicy.from_timings(config.timings))
        try:
            warm = signed_queries(config, pki.consent_signing_key, people, args.concurrency * 2)
            for mode in ("off", "on"):
                await run_mode(channels, config, mode, warm, args.concurrency, bank_proc.pid)
            results = []
            for _ in range(args.rounds):
                for mode in ("off", "on"):
                    batch = signed_queries(config, pki.consent_signing_key, people, args.queries)
                    results.append(await run_mode(channels, config, mode, batch, args.concurrency, bank_proc.pid))
        finally:
            await channels.close()
    finally:
        localstack.stop(bank_proc)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--banks", type=int, default=16)
    parser.add_argument("--queries", type=int, default=300, help="queries per mode and round (default 300)")
    parser.add_argument("--concurrency", type=int, default=8, help="queries in flight (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both modes, alternating (default 2)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cardlookup-bank-calls-"))
    try:
        results = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"== {args.banks} banks, concurrency {args.concurrency}, {args.queries} queries per mode and round")
    print(
        f"{'mode':<10}{'queries/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/q':>12}{'bank CPU ms/q':>15}"
        f"{'done':>7}{'failed':>7}"
    )
    for r in results:
        print(r.row())
    totals = {}
    for mode in ("per-call", "session"):
        rs = [r for r in results if r.mode == mode]
        q = sum(r.queries for r in rs)
        totals[mode] = (q / sum(r.wall_s for r in rs), sum(r.cpu_s for r in rs) / q, sum(r.bank_cpu_s for r in rs) / q)
    (qo, co, bo), (qs, cs, bs) = totals["per-call"], totals["session"]
    print(
        f"session/per-call: queries/s {qs / qo:.2f}x, CPU per query {cs / co:.2f}x, bank CPU per query {bs / bo:.2f}x"
    )


if __name__ == "__main__":
    main()
