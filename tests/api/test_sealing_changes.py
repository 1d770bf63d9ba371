"""Issue 17: a password change while a query runs. Its answers are sealed to
the old password's key as they arrive; the change re-seals them (with the
READY reports) in the same transaction, and answers arriving afterwards go
to the new key: the report opens with the new password, whole."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

from bank_sim.faults import Faults
from cardlookup.hub.v1 import resources_pb2 as pb
from client.aio import AsyncCardLookupClient
from tests.api.helpers import HubHarness
from tests.hub.helpers import expected_cards, rich_person

BANKS = ["102", "103", "104", "105", "301", "308"]
SLOW = "308"


def _api_cards(report: pb.Report) -> Counter[tuple[Any, ...]]:
    kinds = {pb.CARD_TYPE_DEBIT: "debit", pb.CARD_TYPE_CREDIT: "credit"}
    return Counter((c.bank_code, kinds[c.card_type], c.first_four, c.last_four, c.number_length) for c in report.cards)


async def test_a_password_change_while_a_query_runs_keeps_its_report_whole(harness: HubHarness) -> None:
    hub = harness
    person = rich_person(hub.population, hub.clock.now().date(), BANKS, min_banks=3)
    await hub.enrol(person)  # no device key: the payment password's key
    hub.fleet.set_faults(SLOW, Faults(down=True))
    query = await hub.create(person, BANKS)
    for _ in range(3000):
        got = await hub.client.get_query(person.user_id, query.query_id)
        if sum(b.state != pb.BANK_OUTCOME_STATE_PENDING for b in got.bank_outcomes) == len(BANKS) - 1:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the other banks did not answer")
    new = f"{(int(person.payment_password) + 1) % 10**6:06d}"
    async with AsyncCardLookupClient(dataclasses.replace(hub.client.options, timeout_s=60.0)) as patient:
        await patient.change_payment_password(person.user_id, person.payment_password, new)
    hub.fleet.set_faults(SLOW, Faults())
    await hub.until_ready(person, query.query_id)
    report = await hub.client.get_report(person.user_id, query.query_id, new)
    assert _api_cards(report) == expected_cards(hub.population, person, BANKS)
    assert [s.state for s in report.bank_summaries] == [pb.BANK_OUTCOME_STATE_ANSWERED] * len(BANKS)
