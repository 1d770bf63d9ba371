"""How fast `cardlookup-banks` starts N banks in one process, and how much
memory it holds: time to the ready line (process spawn included), RSS and
threads once ready, a ListCards call to every bank over mTLS, and the time
to stop on SIGTERM.

    .venv/bin/python bench/bank_fleet_startup.py [--counts 16,1000] [--pki DIR]

Not a test: it prints figures (docs/bank-simulator.md quotes them).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import psutil  # type: ignore[import-untyped]

from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.banks import bank_fleet
from cardlookup.consent import list_cards_request
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, bank_server_name, create_dev_pki, load_ed25519_private
from cardlookup.population import Population
from cardlookup.tls import channel_credentials


async def call_every_bank(pki: PkiPaths, banks: dict[str, str], population: Population) -> tuple[int, float]:
    """One ListCards per bank, each over a new mTLS channel as the hub would dial
    it, 64 at a time."""
    person = population.people[0]
    key = load_ed25519_private(pki.consent_signing_key)
    creds = channel_credentials(pki.ca_cert, pki.cert("hub-client"), pki.key("hub-client"))
    limit = asyncio.Semaphore(64)

    async def one(code: str, address: str) -> int:
        query_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        request = list_cards_request(
            key,
            CONSENT_KEY_ID,
            query_id=query_id,
            bank_code=code,
            id_number=person.id_number,
            full_name=person.full_name,
            issue_time=now,
            expire_time=now + dt.timedelta(hours=24),
            consent_text_version="2022-03-01",
        )
        options = [("grpc.ssl_target_name_override", bank_server_name(code))]
        async with limit, grpc.aio.secure_channel(address, creds, options=options) as channel:
            stub = bank_grpc.CardDirectoryServiceStub(channel)
            messages = [m async for m in stub.ListCards(request, timeout=30)]
        return 1 if messages and messages[-1].HasField("summary") else 0

    started = time.monotonic()
    answered = sum(await asyncio.gather(*(one(code, address) for code, address in banks.items())))
    return answered, time.monotonic() - started


def run(count: int, pki_root: Path) -> dict[str, float]:
    codes = [b.code for b in bank_fleet(count)]
    t = time.monotonic()
    create_dev_pki(pki_root, codes)
    pki_seconds = time.monotonic() - t
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "addresses.json"
        started = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bank_sim.main",
                "--pki",
                str(pki_root),
                "--count",
                str(count),
                "--addresses-out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            ready_line = proc.stdout.readline()
            ready = time.monotonic() - started
            if not ready_line.startswith("bank_sim ready"):
                raise SystemExit(f"fleet did not start: {ready_line!r}")
            info = psutil.Process(proc.pid)
            rss = info.memory_info().rss
            threads = info.num_threads()
            banks = json.loads(out.read_text())["banks"]
            population = Population(banks=bank_fleet(count))
            answered, call_seconds = asyncio.run(call_every_bank(PkiPaths(pki_root), banks, population))
            rss_after = info.memory_info().rss
            t = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            stop = time.monotonic() - t
        finally:
            if proc.poll() is None:
                proc.kill()
    return {
        "banks": count,
        "pki_s": pki_seconds,
        "ready_s": ready,
        "rss_mb": rss / 2**20,
        "threads": threads,
        "answered": answered,
        "calls_s": call_seconds,
        "rss_after_calls_mb": rss_after / 2**20,
        "stop_s": stop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="16,1000", help="comma-separated fleet sizes (default 16,1000)")
    parser.add_argument("--pki", type=Path, help="PKI directory to reuse (default: a fresh temporary one)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        pki_root = args.pki or Path(tmp) / "pki"
        print(
            f"{'banks':>6} {'pki s':>7} {'ready s':>8} {'RSS MB':>7} {'threads':>7} {'answered':>9} "
            f"{'calls s':>8} {'RSS after':>9} {'stop s':>7}"
        )
        for count in counts:
            r = run(count, pki_root)
            print(
                f"{r['banks']:>6} {r['pki_s']:>7.2f} {r['ready_s']:>8.2f} {r['rss_mb']:>7.1f} {r['threads']:>7} "
                f"{r['answered']:>9} {r['calls_s']:>8.2f} {r['rss_after_calls_mb']:>9.1f} {r['stop_s']:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
