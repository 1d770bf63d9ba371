"""WatchQuery's added latency across hub replicas (issue 8).

    python -m bench.replica_watch [--queries 40] [--banks 8] [--replicas 2]

Starts a throwaway PostgreSQL, the bank fleet in this process (each bank
answering after a random 0.1-1.1 s, so outcomes arrive one at a time) and
hub replica processes on the database. Each query is created through
replica A and watched at once on A (the replica doing the work) and on B
(which only hears of it through PostgreSQL LISTEN/NOTIFY). For every bank
outcome it records when each watcher received it, and prints percentiles of

  - B - A: the added latency of watching on another replica;
  - A - finish and B - finish: from the bank outcome's finish_time (the
    hub's clock when the outcome was made final, before it was written)
    to the watcher receiving it; the same machine's clock, so comparable.

A figure, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from bench.people import pick_people, population_for
from bench.stats import percentile
from cardlookup.banks import bank_fleet
from cardlookup.devpg import ThrowawayPostgres
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import create_dev_pki
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from devstack.replicastack import ReplicaSet
from devstack.spread import JourneyPlan
from hub.core.config import DEFAULT_CONSENT_TEXT_VERSION
from hub.core.notify import OutboxTail

Seen = dict[tuple[str, str], float]
"""(query id, bank code) -> wall-clock time (epoch seconds) a watcher got it."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=40, help="queries, created one after another (default 40)")
    parser.add_argument("--banks", type=int, default=8, help="banks per query (default 8)")
    parser.add_argument("--replicas", type=int, default=2, help="hub replica processes, >= 2 (default 2)")
    args = parser.parse_args(argv)
    if args.queries < 1 or not 1 <= args.banks <= 16 or args.replicas < 2:
        parser.error("--queries >= 1, --banks 1..16, --replicas >= 2")
    return args


async def watch(client: AsyncCardLookupClient, user_id: str, query_id: str, seen: Seen) -> None:
    async for message in client.watch_query(user_id, query_id):
        now = time.time()
        if message.changed_bank_code:
            seen[(query_id, message.changed_bank_code)] = now
        if message.query.state == pb.QUERY_STATE_READY:
            return


def finish_times(query: pb.Query) -> dict[str, float]:
    return {o.bank_code: o.finish_time.ToDatetime(dt.UTC).timestamp() for o in query.bank_outcomes}


def line(label: str, values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"{label:<28} n={len(ms):<5} p50={percentile(ms, 50):7.1f} ms  p99={percentile(ms, 99):7.1f} ms"
        f"  max={max(ms):7.1f} ms"
    )


async def run(args: argparse.Namespace, work: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    codes = [b.code for b in bank_fleet(16)][: args.banks]
    population = population_for(args.queries, 16, today)
    people = pick_people(population, args.queries, today)
    pki = create_dev_pki(work / "pki", [b.code for b in bank_fleet(16)])
    with ThrowawayPostgres.start() as pg:
        url = pg.create_database("cardlookup")
        banks = tuple(BankSimConfig(c, faults=Faults(latency=0.1, latency_jitter=1.0)) for c in codes)
        async with BankFleet(FleetConfig(pki=pki, banks=banks, population=population, admin_port=None)) as fleet:
            replicas = ReplicaSet(pki, fleet.addresses, url, work, count=args.replicas)
            try:
                await asyncio.to_thread(replicas.start_all)
                a = AsyncCardLookupClient(replicas.client_options("A"))
                b = AsyncCardLookupClient(replicas.client_options("B"))
                async with a, b:
                    plan = JourneyPlan(
                        DevFaceProvider.from_file(pki.face_provider_key),
                        OutboxTail(replicas.outbox),
                        DEFAULT_CONSENT_TEXT_VERSION,
                    )
                    on_a, on_b, finished = await measure(a, b, plan, people, codes)
            finally:
                replicas.stop_all()
    keys = sorted(on_a.keys() & on_b.keys())
    print(f"{args.queries} queries x {len(codes)} banks, {args.replicas} replicas on one PostgreSQL; created on A")
    print(line("watch on B - watch on A", [on_b[k] - on_a[k] for k in keys]))
    print(line("watch on A - outcome final", [on_a[k] - finished[k] for k in keys]))
    print(line("watch on B - outcome final", [on_b[k] - finished[k] for k in keys]))
    missing = len(finished) - len(keys)
    if missing:
        print(f"{missing} outcomes were not seen by both watchers (final before the watch began)")


async def measure(
    a: AsyncCardLookupClient, b: AsyncCardLookupClient, plan: JourneyPlan, people: list, codes: list[str]
) -> tuple[Seen, Seen, dict[tuple[str, str], float]]:
    on_a: Seen = {}
    on_b: Seen = {}
    finished: dict[tuple[str, str], float] = {}
    for person in people:
        await a.enroll_user(**person.enrolment())
        started = await a.start_verification(person.user_id)
        code = await plan.outbox.code_for(person.phone)
        query = await a.create_query(
            user_id=person.user_id,
            request_id=f"bench-{person.user_id}",
            verification_id=started.verification_id,
            sms_code=code,
            face_attestation=plan.face.attest(person.user_id, started.verification_id, dt.datetime.now(dt.UTC)),
            consent_text_version=plan.consent_text_version,
            bank_codes=codes,
        )
        await asyncio.gather(
            watch(a, person.user_id, query.query_id, on_a), watch(b, person.user_id, query.query_id, on_b)
        )
        final = await a.get_query(person.user_id, query.query_id)
        for bank, t in finish_times(final).items():
            finished[(query.query_id, bank)] = t
    return on_a, on_b, finished


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cardlookup-replica-watch-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
