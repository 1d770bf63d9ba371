"""Account closure across replicas (issue 22): replica A accepted a query
and is calling a slow bank for it; the user closes the account through
replica B. A's call is cancelled by the store's announcement (B never held
the task), a watch on replica C ends with QUERY_NOT_FOUND, nothing of the
query is written when the slow bank would have answered, and no replica
knows the user any more."""

from __future__ import annotations

import asyncio
import io
import logging

from bank_sim.faults import Faults
from cardlookup.hub.v1 import resources_pb2 as pb
from hub.core.logging import configure_logging
from tests.api.helpers import HubHarness, refused

SLOW_BANK = "103"
FAST_BANKS = ("102", "104")
SLOW_S = 6.0
"""The slow bank answers this long after a call: beyond the hub's attempt
timeout (5 s in these tests), so its query is still running whenever the
closure comes, however loaded the machine; it answers after the closure."""


async def test_closing_through_b_ends_the_call_a_is_making(replicas: list[HubHarness], replica_db: str) -> None:
    a, b, c = replicas
    logs = io.StringIO()
    configure_logging("DEBUG", logs)
    try:
        person = a.eligible(5)
        await a.enrol(person)
        a.fleet.set_faults(SLOW_BANK, Faults(latency=SLOW_S))
        query = await a.create(person, (*FAST_BANKS, SLOW_BANK))  # A leases every task at acceptance
        watching = asyncio.Event()

        async def watch_on_c() -> None:
            async for message in c.client.watch_query(person.user_id, query.query_id):
                states = {o.bank_code: o.state for o in message.query.bank_outcomes}
                if all(states[code] != pb.BANK_OUTCOME_STATE_PENDING for code in FAST_BANKS):
                    watching.set()

        watch = asyncio.create_task(watch_on_c())
        await watching.wait()  # the fast banks are final
        while True:  # A is calling the slow bank (once it has taken a call slot)
            if a.server.metrics.health.in_flight(SLOW_BANK) == 1:
                break
            await asyncio.sleep(0.01)

        closed = await b.client.delete_user(person.user_id, person.payment_password)
        assert closed.ended_query_count == 1
        calls = a.fleet.call_count(SLOW_BANK)

        await refused("QUERY_NOT_FOUND", watch)
        await asyncio.sleep(SLOW_S)  # past the slow bank's answer
        assert a.server.metrics.health.in_flight(SLOW_BANK) == 0
        assert a.fleet.call_count(SLOW_BANK) == calls  # no replica called it again
        for hub in replicas:
            await refused("USER_NOT_FOUND", hub.client.get_user(person.user_id))
        row = await a.server.db.fetch_one("SELECT COUNT(*) FROM bank_tasks WHERE query_id = ?", (query.query_id,))
        assert row is not None and row[0] == 0
    finally:
        logging.getLogger("hub").handlers.clear()
    text = logs.getvalue()
    ended = [line for line in text.splitlines() if "bank_call_ended" in line]
    assert len(ended) == 1 and query.query_id in ended[0] and SLOW_BANK in ended[0]
    assert person.user_id not in text
