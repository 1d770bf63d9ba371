"""The replica demo (issue 8): `bash scripts/replica_demo.sh`, or
`python -m devstack.replica_demo [--users 9]`.

Starts a throwaway PostgreSQL server, the 16 simulated banks (four of them
slow, so bank calls are in flight), and three hub replica processes on the
one database; runs several users' full lookups through the app client
spread over the replicas (round-robin, moving on when a replica does not
answer); SIGKILLs replica B while it holds bank calls in flight; prints
which replica took over its banks and how long that took, then restarts B;
and prints every report, checked against the population's ground truth,
and what each journey went through.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.devpg import PostgresUnavailable, ThrowawayPostgres
from cardlookup.pki import create_dev_pki
from cardlookup.population import Population
from client import render
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from devstack.demo import ground_truth_mismatches
from devstack.replicastack import REPLICA_TIMINGS, ReplicaSet, Takeover, follow_takeover, lanes_spread, leases_of
from devstack.spread import JourneyPlan, JourneyResult, Spread, full_journey
from hub.core.config import DEFAULT_CONSENT_TEXT_VERSION
from hub.core.notify import OutboxTail, read_outbox

VICTIM = "B"
CODES = list(DEFAULT_BANK_CODES)
SLOW = CODES[:4]


def scope(index: int) -> list[str]:
    """Six banks per user, two of them slow (answering after 1.0-1.8 s, under the 2 s call deadline)."""
    fast = [c for c in CODES if c not in SLOW]
    return [SLOW[index % 4], SLOW[(index + 1) % 4], *(fast[(index * 4 + k) % len(fast)] for k in range(4))]


async def run_demo(work: Path, users: int, console: Console) -> bool:
    console.rule("1. Development PKI, PostgreSQL, 16 banks")
    pki = create_dev_pki(work / "pki", CODES)
    population = Population()
    today = dt.datetime.now(dt.UTC).date()
    seen_phones: set[str] = set()
    people = []
    for p in population.eligible_people(today):
        if p.phone not in seen_phones:
            seen_phones.add(p.phone)
            people.append(p)
    people = people[:users]
    with ThrowawayPostgres.start() as pg:
        url = pg.create_database("cardlookup")
        console.print(f"PostgreSQL {pg.bindir.parent.name} on 127.0.0.1:{pg.port} (throwaway, in {pg.root})")
        banks = tuple(
            BankSimConfig(c, faults=Faults(latency=1.0, latency_jitter=0.8) if c in SLOW else Faults()) for c in CODES
        )
        async with BankFleet(FleetConfig(pki=pki, banks=banks, population=population, admin_port=None)) as fleet:
            console.print(f"16 banks over mTLS; slow (1.0-1.8 s): {', '.join(SLOW)}")
            console.rule("2. Three hub replicas on one database")
            replicas = ReplicaSet(pki, fleet.addresses, url, work)
            try:
                await asyncio.to_thread(replicas.start_all)
                for r in replicas.replicas.values():
                    console.print(f"replica {r.name}: {r.address} (pid {r.pids[-1]})")
                lease = REPLICA_TIMINGS.lease_duration.total_seconds()
                console.print(f"bank lane lease {lease:.0f} s, renewed every {lease / 3:.2f} s")
                owned = await lanes_spread(url, replicas)
                console.print("bank lanes: " + ", ".join(f"{n} owns {k}" for n, k in sorted(owned.items())))
                return await _lookups(console, replicas, url, fleet, population, people, pki.face_provider_key)
            finally:
                replicas.stop_all()


async def _lookups(
    console: Console,
    replicas: ReplicaSet,
    url: str,
    fleet: BankFleet,
    population: Population,
    people: list,
    face_key: Path,
) -> bool:
    console.rule(f"3. {len(people)} users' lookups spread over the replicas; replica {VICTIM} is killed mid-way")
    clients = {n: AsyncCardLookupClient(replicas.client_options(n, wait_for_ready=False)) for n in replicas.names}
    for c in clients.values():
        c.connect()
    spread = Spread(clients)
    plan = JourneyPlan(DevFaceProvider.from_file(face_key), OutboxTail(replicas.outbox), DEFAULT_CONSENT_TEXT_VERSION)
    try:
        t0 = time.monotonic()
        journeys = asyncio.gather(
            *(full_journey(spread, plan, spread.home(i), p, scope(i)) for i, p in enumerate(people))
        )
        chaos = await _kill_and_restart(console, replicas, url, t0, journeys)
        results: list[JourneyResult] = await journeys
        elapsed = time.monotonic() - t0
    finally:
        for c in clients.values():
            await c.close()

    console.rule("4. What happened")
    if chaos is None:
        console.print(f"[red]every lookup finished before replica {VICTIM} held a bank call: nothing was killed[/red]")
        return False
    takeover, restart_s, kill_t = chaos
    console.print(
        f"t={kill_t:.1f} s: SIGKILL replica {VICTIM} while it held {len(takeover.held)} bank calls "
        f"of {len({q for q, _ in takeover.held})} quer{'y' if len({q for q, _ in takeover.held}) == 1 else 'ies'}"
    )
    taken = ", ".join(f"{who}: {n}" for who, n in sorted(takeover.by.items()))
    console.print(
        f"its banks were taken over in [bold]{takeover.seconds:.2f} s[/bold] (lease expiry + the next lease round)"
        f" by {taken}"
    )
    console.print(f"replica {VICTIM} restarted and serving {restart_s:.1f} s after the kill")
    moved = [r for r in results if r.moves]
    console.print(f"{len(moved)} of {len(results)} journeys had a step move to another replica:")
    for r in moved:
        console.print(f"  {r.person.user_id}: {', '.join(r.moves)}")
    overlaps = {c: fleet.overlaps(c) for c in CODES if fleet.overlaps(c)}
    console.print(f"overlapping calls of one query at one bank: {sum(overlaps.values())} {overlaps or ''}")
    ready_sms = Counter(m["phone"] for m in read_outbox(replicas.outbox) if m["kind"] == "REPORT_READY")

    console.rule("5. The reports (read with the payment password)")
    ok = not overlaps
    for i, r in enumerate(results):
        problems = ground_truth_mismatches(r.report, r.person, population)
        sms = ready_sms.get(r.person.phone, 0)
        verdict = "[green]matches the ground truth[/green]" if not problems else f"[red]{'; '.join(problems)}[/red]"
        console.print(
            f"{r.person.user_id}: query {r.query_id[:8]}… created on {r.created_on}, watched on "
            f"{'→'.join(r.watched_on)}, {len(r.report.cards)} cards at {len(r.report.bank_summaries)} banks, "
            f"ready SMS x{sms}, {r.seconds:.1f} s — {verdict}"
        )
        ok = ok and not problems and sms == 1
        if i == 0:
            console.print(render.report_view(r.report))
    console.print(f"{len(results)} lookups in {elapsed:.1f} s")
    return ok


async def _kill_and_restart(
    console: Console, replicas: ReplicaSet, url: str, t0: float, journeys: asyncio.Future[list[JourneyResult]]
) -> tuple[Takeover, float, float] | None:
    """Waits until the victim holds bank calls, kills it, follows the
    takeover, then restarts it. None if every journey ended first."""
    held: list[tuple[str, str]] = []
    while not held:
        if journeys.done():
            return None
        await asyncio.sleep(0.1)
        held = await leases_of(url, replicas, VICTIM)
    killed = time.monotonic()
    pid = await asyncio.to_thread(replicas.kill, VICTIM)
    console.print(f"t={killed - t0:.1f} s: replica {VICTIM} (pid {pid}) killed with SIGKILL")
    takeover = await follow_takeover(url, replicas, held, killed)
    console.print(f"t={time.monotonic() - t0:.1f} s: its {len(takeover.held)} bank calls are held by others")
    await asyncio.to_thread(replicas.restart, VICTIM)
    restart_s = time.monotonic() - killed
    console.print(
        f"t={time.monotonic() - t0:.1f} s: replica {VICTIM} is back (pid {replicas.replicas[VICTIM].pids[-1]})"
    )
    return takeover, restart_s, killed - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.replica_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=9, help="users looking up at once (default 9)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs of each replica)")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 100:
        parser.error("--users: 1 to 100")
    console = Console()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="cardlookup-replica-demo-"))
    try:
        ok = asyncio.run(run_demo(work, args.users, console))
    except PostgresUnavailable as error:
        console.print(f"[red]{error}[/red]")
        ok = False
    finally:
        if args.keep:
            console.print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    console.print(f"replica demo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
