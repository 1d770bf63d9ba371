"""Three hub replica processes on one PostgreSQL database, the app client
spread over them, one replica SIGKILLed mid-way and restarted (issue 8).

Every accepted query reaches READY exactly once, each report is the
population's ground truth, no (query, bank) call ever ran twice at once at
any bank (bank_sim's overlap counters), and each ready SMS went out once.

The suite runs the issue's 300 journeys at concurrency 20 (about 50 s of
journeys on a quiet 2-core machine; argon2 hashing in EnrollUser and
GetReport is most of their CPU). The count is a parameter, for a quick run
or a longer one:

    CARDLOOKUP_REPLICA_JOURNEYS=30 .venv/bin/pytest tests/replicas/test_three_replicas.py -q -s
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest

from bank_sim.faults import Faults
from bench.people import pick_people, population_for
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from devstack.replicastack import REPLICA_TIMINGS, ReplicaSet
from devstack.spread import JourneyPlan, JourneyResult, Spread, full_journey
from hub.core.config import DEFAULT_CONSENT_TEXT_VERSION
from hub.core.logging import scrub
from hub.core.notify import OutboxTail, read_outbox
from tests import stores
from tests.replicas.helpers import running_fleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

JOURNEYS = int(os.environ.get("CARDLOOKUP_REPLICA_JOURNEYS", "300"))
CONCURRENCY = 20
CODES = list(DEFAULT_BANK_CODES)
SLOW = CODES[:4]
"""Banks answering after 0.3-0.9 s: their calls are in flight when a replica dies."""
VICTIM = "B"
TIMINGS = dataclasses.replace(REPLICA_TIMINGS, lease_duration=dt.timedelta(seconds=4))
"""A 4 s lease, renewed every 1.33 s: a replica loses a lease only if its
renewal is 2.7 s late. (The engine does not bound a call in flight by its
lease: a replica starved of CPU for longer than lease - lease/3 can still be
in a call when another replica takes the task over; with a 2 s lease on a
machine at load average 40, 300 journeys saw 4 such overlaps.)"""


def scope(index: int) -> list[str]:
    """Four banks per query, one of them slow: every query has a call in
    flight for a while, and the banks' load is spread."""
    fast = [c for c in CODES if c not in SLOW]
    return [SLOW[index % len(SLOW)], *(fast[(index * 3 + k) % len(fast)] for k in range(3))]


async def lease_holders(conn: asyncpg.Connection, replicas: ReplicaSet) -> Counter[str | None]:
    """PENDING bank tasks by the replica owning their bank's lane (issue 16)."""
    rows = await conn.fetch(
        "SELECT l.owner FROM bank_tasks t JOIN lanes l ON l.bank_code = t.bank_code WHERE t.state = 'PENDING'"
    )
    return Counter(replicas.owner_of(r[0]) if r[0] else None for r in rows)


async def test_three_replicas_one_killed_every_query_ready_once_with_the_ground_truth(
    pki: PkiPaths, tmp_path: Path
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    population = population_for(JOURNEYS, len(CODES), today)
    people = pick_people(population, JOURNEYS, today)
    url = stores.new_database()
    async with AsyncExitStack() as stack:
        fleet = await stack.enter_async_context(running_fleet(pki, population, CODES))
        for code in SLOW:
            fleet.set_faults(code, Faults(latency=0.3, latency_jitter=0.6))
        replicas = ReplicaSet(pki, fleet.addresses, url, tmp_path, timings=TIMINGS)
        stack.callback(replicas.stop_all)
        await asyncio.to_thread(replicas.start_all)
        clients = {}
        for name in replicas.names:
            client = AsyncCardLookupClient(replicas.client_options(name, wait_for_ready=False))
            client.connect()
            stack.push_async_callback(client.close)
            clients[name] = client
        spread = Spread(clients)
        plan = JourneyPlan(
            face=DevFaceProvider.from_file(pki.face_provider_key),
            outbox=OutboxTail(replicas.outbox),
            consent_text_version=DEFAULT_CONSENT_TEXT_VERSION,
        )
        gate = asyncio.Semaphore(CONCURRENCY)
        done = 0
        a_third_done = asyncio.Event()

        async def journey(i: int, person: Person) -> JourneyResult:
            nonlocal done
            async with gate:
                result = await full_journey(spread, plan, spread.home(i), person, scope(i))
            done += 1
            if done >= JOURNEYS // 4:
                a_third_done.set()
            return result

        async def chaos() -> dict[str, float]:
            """Kills the victim once a quarter of the journeys are done and it
            owns lanes with bank calls in flight; restarts it a second later."""
            await a_third_done.wait()
            conn = await asyncpg.connect(url)
            try:
                held = 0
                while not held and done < JOURNEYS:
                    held = (await lease_holders(conn, replicas))[VICTIM]
                    await asyncio.sleep(0.01)
            finally:
                await conn.close()
            if not held:
                return {"held": 0, "down_s": 0.0}  # all done first: fails below
            killed = time.monotonic()
            await asyncio.to_thread(replicas.kill, VICTIM)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(replicas.restart, VICTIM)
            return {"held": held, "down_s": time.monotonic() - killed}

        t0 = time.monotonic()
        chaos_task = asyncio.create_task(chaos())
        results = await asyncio.gather(*(journey(i, p) for i, p in enumerate(people)))
        kill = await chaos_task
        elapsed = time.monotonic() - t0

        # Every accepted query reached READY, once.
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT query_id, user_id, state FROM queries")
            epochs = await conn.fetch("SELECT bank_code, epoch AS lease_epoch FROM lanes")
        finally:
            await conn.close()
        assert len(rows) == JOURNEYS
        assert {r["query_id"] for r in rows} == {r.query_id for r in results}
        assert {r["state"] for r in rows} == {"READY"}
        ready_lines = Counter(
            e["query_id"] for name in replicas.names for e in replicas.events(name) if e.get("event") == "query_ready"
        )
        # (Logs scrub digit runs that look like phone or card numbers, which
        # can hit a query id: compare ids as the log writes them.) No query
        # was made READY twice. The line follows the READY commit, so the
        # victim, SIGKILLed between the two, can take one line with it (the
        # store, checked above, says READY); seen once in 300 journeys.
        expected = {scrub(r.query_id) for r in results}
        assert set(ready_lines) <= expected and max(ready_lines.values()) == 1, ready_lines
        assert len(expected - set(ready_lines)) <= 1, expected - set(ready_lines)

        # Each report is the population's ground truth.
        for i, result in enumerate(results):
            assert_report_is_truth(result.report, population, result.person, scope(i))
            assert result.ready.state == pb.QUERY_STATE_READY

        # No bank ever had two calls of one query in flight at once.
        assert {c: fleet.overlaps(c) for c in CODES} == {c: 0 for c in CODES}
        assert all(fleet.max_calls_per_query(c) == 1 for c in CODES)

        # One ready SMS per query, whichever replica sent it (one claimed by
        # the victim before it could send goes out after the notice claim).
        deadline = time.monotonic() + TIMINGS.notice_claim.total_seconds() + 30
        while True:
            notices = Counter(m["phone"] for m in read_outbox(replicas.outbox) if m["kind"] == "REPORT_READY")
            if len(notices) == len(people) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert notices == Counter({p.phone: 1 for p in people})

        # The victim owned lanes with calls in flight when it died; other
        # replicas took them over (a new lane epoch), and it came back.
        assert kill["held"] > 0
        assert any(r["lease_epoch"] >= 2 for r in epochs)
        assert len(replicas.replicas[VICTIM].pids) == 2

    moved = sum(1 for r in results if r.moves)
    print(
        f"\n{JOURNEYS} journeys at concurrency {CONCURRENCY} over 3 replicas in {elapsed:.1f} s;"
        f" victim's lanes held {kill['held']} pending tasks, down {kill['down_s']:.1f} s;"
        f" {moved} journeys moved replica;"
        f" lanes taken over or handed over: {sum(1 for r in epochs if r['lease_epoch'] >= 2)}"
    )


def assert_report_is_truth(report: pb.Report, population: Population, person: Person, codes: list[str]) -> None:
    assert [s.bank_code for s in report.bank_summaries] == codes
    for summary in report.bank_summaries:
        truth = population.expected_answer(summary.bank_code, person.id_number)
        assert (summary.debit_card_count, summary.credit_card_count) == (truth.debit_count, truth.credit_count)
        assert summary.unlisted_card_count == sum(truth.unlisted.values())
    cards = sorted((c.bank_code, c.first_four, c.last_four) for c in report.cards)
    truth_cards = sorted(
        (c.bank_code, c.first_four, c.last_four)
        for code in codes
        for c in population.expected_answer(code, person.id_number).listed
    )
    assert cards == truth_cards
