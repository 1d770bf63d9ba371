"""WatchQuery across replicas (issue 8): a watch on replica B follows a
query that replica A accepted and works on, bank by bank, to READY. The
added latency is measured, not asserted: `python -m bench.replica_watch`."""

from __future__ import annotations

import asyncio

import asyncpg

from bank_sim.faults import Faults
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import resources_pb2 as pb
from tests.api.helpers import HubHarness

BANKS = ["102", "103", "104", "105", "301", "302"]


async def events(hub: HubHarness, user_id: str, query_id: str) -> list[svc.WatchQueryResponse]:
    return [m async for m in hub.client.watch_query(user_id, query_id)]


async def test_a_watch_on_b_follows_a_query_worked_on_by_a(replicas: list[HubHarness], replica_db: str) -> None:
    a, b, c = replicas
    person = a.eligible(4)
    await a.enrol(person)
    for i, code in enumerate(BANKS):  # outcomes arrive one by one, after the watches began
        a.fleet.set_faults(code, Faults(latency=0.6 + 0.25 * i))
    query = await a.create(person, BANKS)

    on_b, on_a, on_c = await asyncio.gather(
        events(b, person.user_id, query.query_id),
        events(a, person.user_id, query.query_id),
        events(c, person.user_id, query.query_id),
    )

    # B saw the snapshot, then each bank's outcome once, live, then READY.
    assert on_b[0].changed_bank_code == "" and on_b[0].query.state in (pb.QUERY_STATE_ACCEPTED, pb.QUERY_STATE_RUNNING)
    changed = [m.changed_bank_code for m in on_b[1:]]
    pending_at_start = [o.bank_code for o in on_b[0].query.bank_outcomes if o.state == pb.BANK_OUTCOME_STATE_PENDING]
    assert sorted(changed) == sorted(pending_at_start) and len(changed) >= 1
    assert on_b[-1].query.state == pb.QUERY_STATE_READY
    assert all(o.state == pb.BANK_OUTCOME_STATE_ANSWERED for o in on_b[-1].query.bank_outcomes)
    for message in on_b[1:-1]:
        assert message.query.state == pb.QUERY_STATE_RUNNING
        done = {o.bank_code for o in message.query.bank_outcomes if o.state != pb.BANK_OUTCOME_STATE_PENDING}
        assert message.changed_bank_code in done
    # Every replica's watch tells the same story in the same order.
    for other in (on_a, on_c):
        theirs = [m.changed_bank_code for m in other[1:]]
        assert [x for x in theirs if x in changed] == [x for x in changed if x in theirs]
    assert on_a[-1].query == on_b[-1].query == on_c[-1].query

    # Each bank was called once for the query, by the owner of its lane.
    conn = await asyncpg.connect(replica_db)
    try:
        writers = await conn.fetch("SELECT lease_owner FROM bank_tasks WHERE query_id = $1", query.query_id)
    finally:
        await conn.close()
    assert all(r[0] for r in writers)
    assert [a.fleet.call_count(code) for code in BANKS] == [1] * len(BANKS)
