"""The issue's "done when": for every person and every bank, what the bank
streams over real mTLS equals the population's ground truth."""

from __future__ import annotations

import asyncio

from bank_sim.fleet import BankFleet
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import ManualClock
from cardlookup.population import Population
from tests.bank.caller import BankCaller

KINDS = {"debit": bank_pb.CARD_TYPE_DEBIT, "credit": bank_pb.CARD_TYPE_CREDIT}


async def test_every_person_at_every_bank_matches_ground_truth(
    fleet: BankFleet, caller: BankCaller, population: Population, clock: ManualClock
) -> None:
    limit = asyncio.Semaphore(64)
    checked = {"cards": 0, "unlisted": 0, "answers": 0}

    async def check(code: str, full_name: str, id_number: str) -> None:
        request = caller.request(code, full_name, id_number, now=clock.now())
        async with limit:
            got = await caller.list_cards(code, request)
        expected = population.expected_answer(code, id_number)
        assert [(c.card_type, c.first_four, c.last_four, c.number_length, c.card_ref) for c in got.cards] == [
            (KINDS[c.kind], c.first_four, c.last_four, len(c.number), c.card_ref) for c in expected.listed
        ]
        assert got.summary is not None
        assert got.summary.listed_card_count == len(expected.listed)
        assert got.summary.debit_card_count == expected.debit_count
        assert got.summary.credit_card_count == expected.credit_count
        unlisted = {
            bank_pb.UnlistedReason.Name(u.reason).removeprefix("UNLISTED_REASON_"): u.card_count
            for u in got.summary.unlisted
        }
        assert unlisted == expected.unlisted
        assert len(got.summary.unlisted) == len(unlisted)  # one entry per reason
        checked["cards"] += len(got.cards)
        checked["unlisted"] += sum(unlisted.values())
        checked["answers"] += 1

    await asyncio.gather(
        *(check(code, p.full_name, p.id_number) for code in fleet.addresses for p in population.people)
    )
    assert checked["answers"] == len(population.people) * 16
    # The comparison is not vacuous: the population has both kinds of cards.
    assert checked["cards"] > 500 and checked["unlisted"] > 20
    assert sum(fleet.call_count(code) for code in fleet.addresses) == checked["answers"]
