"""The admin API's IssueCard (issue 12): a new card for a person at one bank,
listed by the bank's next query (a retry of an earlier query id is answered
as before), refused with reasons for bad input."""

from __future__ import annotations

import grpc
import pytest

from bank_sim.admin_client import AdminClient
from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Person
from cardlookup.rpc_errors import error_info_of
from tests.bank.caller import BankCaller


async def test_an_issued_card_is_listed_by_the_next_query_only(
    pki: PkiPaths, fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    before = caller.request(code, person.full_name, person.id_number, now=clock.now())
    first = await caller.list_cards(code, before)
    assert fleet.admin_address is not None
    async with AdminClient.connect(pki, fleet.admin_address, fleet.admin_server_name) as admin:
        issued = await admin.issue_card(code, person.id_number, credit=True)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.issue_card(code, person.id_number[:17] + "Z")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info_of(caught.value)
        assert info is not None and (info.reason, info.metadata.get("field")) == ("INVALID_REQUEST", "id_number")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.issue_card("999", person.id_number)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert issued.number_length == 16 and issued.card_ref
    assert (await caller.list_cards(code, before)).cards == first.cards  # a retry: as before
    after = await caller.list_cards(code, caller.request(code, person.full_name, person.id_number, now=clock.now()))
    assert after.cards[: len(first.cards)] == first.cards
    assert [(c.card_ref, c.card_type) for c in after.cards[len(first.cards) :]] == [
        (issued.card_ref, 2)  # CARD_TYPE_CREDIT
    ]
    assert (after.cards[-1].first_four, after.cards[-1].last_four) == (issued.first_four, issued.last_four)
