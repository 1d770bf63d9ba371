"""Each fault switch of a simulated bank is observable over the wire."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import grpc
import pytest

from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet
from bank_sim.misbehaviour import DECOY_NUMBER, HUB_CARD_CAP, OVERSIZED_REF_BYTES, UNKNOWN_CARD_TYPE
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import id_check_char, is_luhn_valid
from cardlookup.clock import ManualClock
from cardlookup.population import R13_TEST_CUSTOMER, Person, Population
from cardlookup.rpc_errors import error_info_of
from tests.bank.caller import BankCaller


def reason_of(error: grpc.aio.AioRpcError) -> str:
    info = error_info_of(error)
    assert info is not None
    return info.reason


def masked(card: bank_pb.MaskedCard) -> tuple[int, str, str, int, str]:
    return (card.card_type, card.first_four, card.last_four, card.number_length, card.card_ref)


async def test_down_switch_and_recovery(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    fleet.set_faults(code, Faults(down=True))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await caller.list_cards(code, request)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and reason_of(caught.value) == "SIMULATED_OUTAGE"
    other = "103" if code != "103" else "102"
    assert (
        await caller.list_cards(other, caller.request(other, person.full_name, person.id_number, now=clock.now()))
    ).summary is not None
    fleet.set_faults(code, Faults())
    assert (await caller.list_cards(code, request)).summary is not None
    assert fleet.call_count(code) == 2


async def test_outage_windows_follow_the_fleet_clock(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    start = clock.now() + dt.timedelta(hours=1)
    fleet.set_faults(code, Faults(outages=((start, start + dt.timedelta(hours=2)),)))
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    outcomes = []
    for step in (dt.timedelta(0), dt.timedelta(hours=1), dt.timedelta(hours=1, minutes=59), dt.timedelta(minutes=1)):
        clock.advance(step)
        try:
            await caller.list_cards(code, request)
            outcomes.append("ok")
        except grpc.aio.AioRpcError as error:
            outcomes.append(error.code().name)
    assert outcomes == ["ok", "UNAVAILABLE", "UNAVAILABLE", "ok"]


async def test_fixed_latency_delays_the_answer(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    fleet.set_faults(code, Faults(latency=0.3))
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    started = time.monotonic()
    await caller.list_cards(code, request)
    assert time.monotonic() - started >= 0.3
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await caller.list_cards(code, request, rpc_timeout=0.1)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_jittered_delay_is_uniform_within_its_range() -> None:
    import random

    faults = Faults(latency=0.5, latency_jitter=0.25)
    rng = random.Random(1)
    delays = [faults.delay(rng) for _ in range(2000)]
    assert all(0.5 <= d <= 0.75 for d in delays)
    assert min(delays) < 0.52 and max(delays) > 0.73  # spread over the whole range
    assert Faults(latency=0.2).delay(rng) == 0.2


async def test_error_rate_fails_calls_with_the_chosen_code(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    fleet.set_faults(code, Faults(error_rate=1.0, error_code="INTERNAL"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await caller.list_cards(code, request)
    assert caught.value.code() == grpc.StatusCode.INTERNAL and reason_of(caught.value) == "SIMULATED_ERROR"

    fleet.set_faults(code, Faults(error_rate=0.5, error_code="ABORTED"))
    codes = []
    for _ in range(60):
        try:
            await caller.list_cards(code, request)
            codes.append("OK")
        except grpc.aio.AioRpcError as error:
            codes.append(error.code().name)
    assert set(codes) == {"OK", "ABORTED"}
    assert 10 <= codes.count("ABORTED") <= 50


@pytest.mark.parametrize(("k", "expect_cards"), [(0, 0), (1, 1), (50, None)])
async def test_stream_breaks_after_k_cards_without_summary(
    fleet: BankFleet,
    caller: BankCaller,
    customer: tuple[Person, str],
    population: Population,
    clock: ManualClock,
    k: int,
    expect_cards: int | None,
) -> None:
    person, code = customer
    listed = population.expected_answer(code, person.id_number).listed
    fleet.set_faults(code, Faults(break_after_cards=k))
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    received, error = await caller.cards_before_failure(code, request)
    assert error.code() == grpc.StatusCode.UNAVAILABLE and reason_of(error) == "SIMULATED_STREAM_BREAK"
    assert all(m.HasField("card") for m in received)  # never a summary
    assert len(received) == (len(listed) if expect_cards is None else expect_cards)


async def test_stalled_stream_hangs_until_the_deadline_and_frees_its_slot(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    fleet.set_faults(code, Faults(stall_after_cards=1, max_concurrent=1))
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    received, error = await caller.cards_before_failure(code, request, rpc_timeout=0.5)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(received) == 1 and received[0].HasField("card")
    # The stalled handler was cancelled, so the only slot is free again.
    fleet.set_faults(code, Faults(max_concurrent=1))
    for _ in range(50):
        try:
            got = await caller.list_cards(code, request)
            break
        except grpc.aio.AioRpcError as e:  # the server may see the cancel a moment later
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await asyncio.sleep(0.02)
    assert got.summary is not None


async def test_calls_beyond_max_concurrent_get_resource_exhausted(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    fleet.set_faults(code, Faults(stall_after_cards=1, max_concurrent=2))
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    stalled = [caller.stubs[code].ListCards(request, timeout=10) for _ in range(2)]
    for call in stalled:  # both are in flight once their first card arrived
        message = await call.read()
        assert isinstance(message, bank_pb.ListCardsResponse) and message.HasField("card")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await caller.list_cards(code, request)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(caught.value) == "TOO_MANY_CONCURRENT_CALLS"
    for call in stalled:
        call.cancel()
    assert fleet.call_count(code) == 3


async def answer(
    caller: BankCaller, person: Person, code: str, clock: ManualClock
) -> tuple[list[bank_pb.MaskedCard], bank_pb.ListCardsSummary]:
    got = await caller.list_cards(code, caller.request(code, person.full_name, person.id_number, now=clock.now()))
    assert got.summary is not None
    return got.cards, got.summary


def counts(summary: bank_pb.ListCardsSummary) -> tuple[int, int, int]:
    return (summary.listed_card_count, summary.debit_card_count, summary.credit_card_count)


def counts_of(cards: list[bank_pb.MaskedCard]) -> tuple[int, int, int]:
    return (
        len(cards),
        sum(c.card_type == bank_pb.CARD_TYPE_DEBIT for c in cards),
        sum(c.card_type == bank_pb.CARD_TYPE_CREDIT for c in cards),
    )


ONE_CARD_OR_SUMMARY = [
    Misbehaviour.FULL_CARD_NUMBER,
    Misbehaviour.WRONG_DIGITS,
    Misbehaviour.UNKNOWN_CARD_TYPE,
    Misbehaviour.SUMMARY_MISMATCH,
    Misbehaviour.OVERSIZED_MESSAGE,
    Misbehaviour.CARD_REF_FROM_NUMBER,
]
"""The misbehaviours that corrupt one card or the summary; the others break
the card cap, R13's precedence or a request-side rule (tests below and the
conformance tests)."""


@pytest.mark.parametrize("kind", ONE_CARD_OR_SUMMARY)
async def test_each_misbehaviour_corrupts_exactly_one_thing(
    fleet: BankFleet,
    caller: BankCaller,
    customer: tuple[Person, str],
    population: Population,
    clock: ManualClock,
    kind: Misbehaviour,
) -> None:
    person, code = customer
    clean_cards, clean_summary = await answer(caller, person, code, clock)
    fleet.set_faults(code, Faults(misbehaviour=kind))
    cards, summary = await answer(caller, person, code, clock)
    assert len(cards) == len(clean_cards) >= 2
    assert [masked(c) for c in cards[1:]] == [masked(c) for c in clean_cards[1:]]
    assert list(summary.unlisted) == list(clean_summary.unlisted)
    bad, good = cards[0], clean_cards[0]
    if kind is Misbehaviour.SUMMARY_MISMATCH:
        assert masked(bad) == masked(good)
        assert counts(summary) != counts_of(cards)
        assert summary.listed_card_count == len(cards) + 1
        return
    assert counts(summary) == counts(clean_summary) == counts_of(clean_cards)
    full_number = population.expected_answer(code, person.id_number).listed[0].number
    if kind is Misbehaviour.FULL_CARD_NUMBER:
        assert bad.first_four == full_number and is_luhn_valid(bad.first_four)
        changed = "first_four"
    elif kind is Misbehaviour.WRONG_DIGITS:
        assert not (len(bad.first_four) == 4 and bad.first_four.isdigit())
        changed = "first_four"
    elif kind is Misbehaviour.UNKNOWN_CARD_TYPE:
        assert bad.card_type == UNKNOWN_CARD_TYPE
        assert bad.card_type not in bank_pb.CardType.values()
        changed = "card_type"
    elif kind is Misbehaviour.CARD_REF_FROM_NUMBER:
        assert bad.card_ref.replace("-", "") == full_number and "-" in bad.card_ref
        changed = "card_ref"
    else:
        assert kind is Misbehaviour.OVERSIZED_MESSAGE
        assert bank_pb.ListCardsResponse(card=bad).ByteSize() >= OVERSIZED_REF_BYTES
        changed = "card_ref"
    fields = ("card_type", "first_four", "last_four", "number_length", "card_ref")
    assert [f for f in fields if getattr(bad, f) != getattr(good, f)] == [changed]


@pytest.mark.parametrize("kind", [m for m in ONE_CARD_OR_SUMMARY if m is not Misbehaviour.SUMMARY_MISMATCH])
async def test_misbehaviour_shows_even_for_a_subject_without_cards(
    fleet: BankFleet, caller: BankCaller, clock: ManualClock, kind: Misbehaviour
) -> None:
    first17 = "31010119800101999"
    stranger = first17 + id_check_char(first17)
    fleet.set_faults("102", Faults(misbehaviour=kind))
    got = await caller.list_cards("102", caller.request("102", "路人甲", stranger, now=clock.now()))
    assert len(got.cards) == 1 and got.summary is not None
    assert counts(got.summary) == (1, 1, 0)  # the decoy is counted: only `kind` is wrong
    if kind is Misbehaviour.FULL_CARD_NUMBER:
        assert got.cards[0].first_four == DECOY_NUMBER


async def test_summary_mismatch_for_a_subject_without_cards(
    fleet: BankFleet, caller: BankCaller, clock: ManualClock
) -> None:
    first17 = "31010119800101999"
    stranger = first17 + id_check_char(first17)
    fleet.set_faults("102", Faults(misbehaviour=Misbehaviour.SUMMARY_MISMATCH))
    got = await caller.list_cards("102", caller.request("102", "路人甲", stranger, now=clock.now()))
    assert got.cards == [] and got.summary is not None and got.summary.listed_card_count == 1


async def test_too_many_cards_is_one_over_the_cap_and_consistent(
    fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    fleet.set_faults(code, Faults(misbehaviour=Misbehaviour.TOO_MANY_CARDS))
    cards, summary = await answer(caller, person, code, clock)
    assert len(cards) == HUB_CARD_CAP + 1
    assert len({c.card_ref for c in cards}) == len(cards)
    assert counts(summary) == counts_of(cards)


async def test_wrong_precedence_counts_the_r13_test_customer_by_enum_order(
    fleet: BankFleet, caller: BankCaller, clock: ManualClock
) -> None:
    name, id_number = R13_TEST_CUSTOMER
    right = await caller.list_cards("102", caller.request("102", name, id_number, now=clock.now()))
    fleet.set_faults("102", Faults(misbehaviour=Misbehaviour.WRONG_REASON_PRECEDENCE))
    wrong = await caller.list_cards("102", caller.request("102", name, id_number, now=clock.now()))
    assert right.summary is not None and wrong.summary is not None
    assert right.cards == wrong.cards == []
    assert {bank_pb.UnlistedReason.Name(u.reason): u.card_count for u in right.summary.unlisted} == {
        "UNLISTED_REASON_ID_DOCUMENT_EXPIRED": 1,
        "UNLISTED_REASON_NO_PHONE_ON_FILE": 1,
    }
    assert {bank_pb.UnlistedReason.Name(u.reason): u.card_count for u in wrong.summary.unlisted} == {
        "UNLISTED_REASON_NO_PHONE_ON_FILE": 2
    }
