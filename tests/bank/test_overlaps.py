"""The simulator records overlapping ListCards calls per query id: the
evidence the hub replica tests need that no (query, bank) call ever ran on
two replicas at the same time (issue 8)."""

from __future__ import annotations

import asyncio

from bank_sim.admin_client import AdminClient
from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Person
from tests.bank.caller import BankCaller


async def test_a_second_call_for_a_query_in_flight_is_an_overlap(
    pki: PkiPaths, fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    fleet.set_faults(code, Faults(latency=0.3))  # calls stay in flight long enough to meet
    same = caller.request(code, person.full_name, person.id_number, now=clock.now())
    other = caller.request(code, person.full_name, person.id_number, now=clock.now())
    assert (fleet.overlaps(code), fleet.max_calls_per_query(code)) == (0, 0)

    # Different query ids at once, then the same query id one after another: no overlap.
    await asyncio.gather(caller.list_cards(code, same), caller.list_cards(code, other))
    await caller.list_cards(code, same)
    assert (fleet.overlaps(code), fleet.max_calls_per_query(code)) == (0, 1)

    # Three calls of one query id at once: the second and third overlap.
    await asyncio.gather(*(caller.list_cards(code, same) for _ in range(3)))
    assert (fleet.overlaps(code), fleet.max_calls_per_query(code)) == (2, 3)
    assert fleet.call_count(code) == 6
    assert all(fleet.overlaps(c) == 0 for c in fleet.codes if c != code)

    assert fleet.admin_address is not None
    async with AdminClient.connect(pki, fleet.admin_address, fleet.admin_server_name) as admin:
        listing = {b.code: b for b in await admin.list_banks()}
    assert (listing[code].overlap_count, listing[code].max_calls_per_query) == (2, 3)
    assert (listing["403"].overlap_count, listing["403"].max_calls_per_query) == (0, 0)


async def test_a_refused_call_still_counts_while_it_is_in_flight(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    """A refusal after the latency (simulated error) is a call in flight all
    the same: a hub replica sending the same query there meanwhile overlaps."""
    person, code = customer
    fleet.set_faults(code, Faults(latency=0.3, error_rate=1.0))
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    results = await asyncio.gather(*(caller.list_cards(code, request) for _ in range(2)), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    assert (fleet.overlaps(code), fleet.max_calls_per_query(code)) == (1, 2)
