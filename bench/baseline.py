"""The baseline: the same fan-out as the hub, done by a bare grpc.aio client
and nothing else. One mTLS channel per bank (hub-client certificate, the
bank's TLS name), per query one ListCards stream per bank with a consent
signed for that bank, every stream read to its end. No store, no report, no
API. Run as its own process (`python -m bench.baseline ...`, started by
bench/fanout.py) so that its CPU is its own; it writes a PhaseResult as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.people import pick_people
from bench.phase import CpuMeter, run_phase
from bench.stats import summarize
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.banks import bank_fleet
from cardlookup.consent import list_cards_request
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, bank_server_name, load_ed25519_private
from cardlookup.population import Person, Population
from cardlookup.tls import channel_credentials

CONSENT_TEXT_VERSION = "2022-03-01"
ATTEMPT_TIMEOUT_S = 120.0
"""As the hub's attempt timeout in the bench (bench/processes.py): at 1,000 banks on a
loaded 2-core machine a stream can take tens of seconds, and the two sides must wait alike."""


class BareFanout:
    def __init__(self, pki: PkiPaths, banks: dict[str, str]) -> None:
        creds = channel_credentials(pki.ca_cert, pki.cert("hub-client"), pki.key("hub-client"))
        self._key: Ed25519PrivateKey = load_ed25519_private(pki.consent_signing_key)
        self._channels = {
            code: grpc.aio.secure_channel(
                address, creds, options=[("grpc.ssl_target_name_override", bank_server_name(code))]
            )
            for code, address in banks.items()
        }
        self._stubs = {code: bank_grpc.CardDirectoryServiceStub(ch) for code, ch in self._channels.items()}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)

    async def _list_cards(self, code: str, person: Person, query_id: str) -> None:
        now = dt.datetime.now(dt.UTC)
        request = list_cards_request(
            self._key,
            CONSENT_KEY_ID,
            query_id=query_id,
            bank_code=code,
            id_number=person.id_number,
            full_name=person.full_name,
            issue_time=now,
            expire_time=now + dt.timedelta(hours=24),
            consent_text_version=CONSENT_TEXT_VERSION,
        )
        last = None
        async for message in self._stubs[code].ListCards(request, timeout=ATTEMPT_TIMEOUT_S):
            last = message
        if last is None or not last.HasField("summary"):
            raise RuntimeError(f"bank {code} ended its stream without a summary")

    async def query(self, person: Person) -> float:
        query_id = str(uuid.uuid4())
        t0 = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for code in self._stubs:
                group.create_task(self._list_cards(code, person, query_id))
        return time.perf_counter() - t0


async def measure(args: argparse.Namespace, banks: dict[str, str]) -> dict[str, object]:
    population = Population(size=args.population_size, banks=bank_fleet(len(banks)))
    people = pick_people(population, args.warmup + args.queries, dt.datetime.fromisoformat(args.on).date())
    fanout = BareFanout(PkiPaths(Path(args.pki)), banks)
    try:
        meters = [CpuMeter(os.getpid()), CpuMeter(args.bank_pid)]
        outcome = await run_phase(
            people, warmup=args.warmup, concurrency=args.concurrency, cap_s=args.cap, one=fanout.query, meters=meters
        )
    finally:
        await fanout.close()
    result = summarize(
        "baseline",
        len(banks),
        args.concurrency,
        outcome.latencies_s,
        outcome.failed,
        outcome.wall_s,
        meters[0].seconds,
        meters[1].seconds,
    )
    return {"result": result.to_dict(), "first_error": outcome.first_error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pki", required=True)
    parser.add_argument("--addresses", required=True, help="the addresses file cardlookup-banks wrote")
    parser.add_argument("--bank-pid", type=int, required=True, help="the bank fleet's pid (its CPU is sampled)")
    parser.add_argument("--population-size", type=int, required=True)
    parser.add_argument("--on", required=True, help="the day eligibility is judged on (ISO date)")
    parser.add_argument("--queries", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--cap", type=float, required=True, help="seconds of measured phase at most")
    parser.add_argument("--json-out", required=True)
    args = parser.parse_args()
    banks: dict[str, str] = json.loads(Path(args.addresses).read_text())["banks"]
    Path(args.json_out).write_text(json.dumps(asyncio.run(measure(args, banks))))


if __name__ == "__main__":
    main()
