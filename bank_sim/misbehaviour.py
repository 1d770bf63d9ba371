"""Deliberately wrong banks, for testing the hub's defences and the
conformance suite.

Each answer misbehaviour corrupts a correct ListCards stream in exactly one
place and leaves the rest consistent, so a test knows which rule the hub (or
the suite) must catch. A stream with no card gets one decoy card first (and a
summary that counts it), so every card-level misbehaviour shows on every
subject. WRONG_REASON_PRECEDENCE shows only for a subject holding a card with
several R13 conditions (such as population.R13_TEST_CUSTOMER). The two
request-side misbehaviours (TRAILING_NEWLINE_ACCEPTED, CALLER_BY_COMMON_NAME)
are in `lax_lookup` here and in the servicer's caller check.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from bank_sim.directory import Lookup
from bank_sim.faults import Misbehaviour
from bank_sim.wire import UNLISTED_REASONS as REASON_VALUES
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import luhn_check_digit
from cardlookup.population import UNLISTED_REASONS

HUB_CARD_CAP = 200
"""The hub's cap on cards per answer (hub.fanout.validation.MAX_CARDS; a test keeps
them equal); TOO_MANY_CARDS streams one more."""

SESSION_ONLY = frozenset(
    {
        Misbehaviour.SESSION_WRONG_QUERY_ID,
        Misbehaviour.SESSION_MESSAGE_AFTER_SUMMARY,
        Misbehaviour.SESSION_STALL_BLOCKS_OTHERS,
    }
)
"""Misbehaviours of the session stream (bank_sim.session); ListCards answers right."""

UNKNOWN_CARD_TYPE = 7
"""A card_type outside the CardType enum (proto3 enums are open on the wire)."""
WRONG_FIRST_FOUR = "62a2"
OVERSIZED_REF_BYTES = 1024 * 1024
_DECOY_BODY = "622202000000000"
DECOY_NUMBER = _DECOY_BODY + luhn_check_digit(_DECOY_BODY)
"""A made-up, Luhn-valid 16-digit debit card number for card-less answers."""


def decoy_card() -> bank_pb.ListCardsResponse:
    return bank_pb.ListCardsResponse(
        card=bank_pb.MaskedCard(
            card_type=bank_pb.CARD_TYPE_DEBIT,
            first_four=DECOY_NUMBER[:4],
            last_four=DECOY_NUMBER[-4:],
            number_length=len(DECOY_NUMBER),
            card_ref="decoy-card",
        )
    )


def lax_lookup(lookup: Lookup) -> Lookup:
    """What a bank whose patterns end in `$` (or that strips values before
    checking them) validates: the values without one trailing newline."""
    return dataclasses.replace(
        lookup, full_name=lookup.full_name.removesuffix("\n"), id_number=lookup.id_number.removesuffix("\n")
    )


def misbehave(
    kind: Misbehaviour,
    messages: list[bank_pb.ListCardsResponse],
    full_number: str | None,
    unlisted_conditions: Sequence[frozenset[str]] = (),
) -> list[bank_pb.ListCardsResponse]:
    """A copy of the correct stream `messages` (cards, then the summary)
    corrupted by `kind`. `full_number` is the first card's full number (None
    for a card-less stream, where the decoy's number is used);
    `unlisted_conditions` the R13 conditions of each unlisted card held."""
    out = [type(m).FromString(m.SerializeToString()) for m in messages]
    summary = out[-1].summary
    if kind in (Misbehaviour.TRAILING_NEWLINE_ACCEPTED, Misbehaviour.CALLER_BY_COMMON_NAME) or kind in SESSION_ONLY:
        return out  # request-side and session misbehaviours: the answer itself is right
    if kind is Misbehaviour.SUMMARY_MISMATCH:
        summary.listed_card_count += 1
        summary.debit_card_count += 1
        return out
    if kind.breaks(Misbehaviour.WRONG_REASON_PRECEDENCE):
        # The lowest-numbered reason wins (enum order), not the documented one.
        wrong = Counter(next(r for r in UNLISTED_REASONS if r in c) for c in unlisted_conditions)
        del summary.unlisted[:]
        for reason in UNLISTED_REASONS:
            if wrong[reason]:
                summary.unlisted.add(reason=REASON_VALUES[reason], card_count=wrong[reason])
        return out
    if kind is Misbehaviour.TOO_MANY_CARDS:
        extra = [_filler_card(i) for i in range(HUB_CARD_CAP + 1 - (len(out) - 1))]
        summary.listed_card_count += len(extra)
        summary.debit_card_count += len(extra)
        return [*out[:-1], *extra, out[-1]]
    if len(out) == 1:  # no card: add the decoy, and count it
        out.insert(0, decoy_card())
        summary.listed_card_count += 1
        summary.debit_card_count += 1
        full_number = DECOY_NUMBER
    card = out[0].card
    if kind is Misbehaviour.FULL_CARD_NUMBER:
        card.first_four = full_number or DECOY_NUMBER
    elif kind is Misbehaviour.WRONG_DIGITS:
        card.first_four = WRONG_FIRST_FOUR
    elif kind is Misbehaviour.UNKNOWN_CARD_TYPE:
        card.card_type = UNKNOWN_CARD_TYPE  # type: ignore[assignment]
    elif kind is Misbehaviour.OVERSIZED_MESSAGE:
        card.card_ref = "x" * OVERSIZED_REF_BYTES
    elif kind is Misbehaviour.CARD_REF_FROM_NUMBER:
        number = full_number or DECOY_NUMBER
        card.card_ref = "-".join(number[i : i + 4] for i in range(0, len(number), 4))
    return out


def _filler_card(i: int) -> bank_pb.ListCardsResponse:
    """A well-formed masked debit card with a unique reference."""
    return bank_pb.ListCardsResponse(
        card=bank_pb.MaskedCard(
            card_type=bank_pb.CARD_TYPE_DEBIT,
            first_four="6222",
            last_four=f"{i % 10000:04d}",
            number_length=16,
            card_ref=f"filler-{i}",
        )
    )
