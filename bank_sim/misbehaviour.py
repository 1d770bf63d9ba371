"""Deliberately wrong answers, for testing the hub's defences against banks.

Each misbehaviour corrupts a correct ListCards stream in exactly one place
and leaves the rest consistent, so a test knows which rule the hub must
catch. A stream with no card gets one decoy card first (and a summary that
counts it), so every misbehaviour shows on every subject.
"""

from __future__ import annotations

from bank_sim.faults import Misbehaviour
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import luhn_check_digit

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


def misbehave(
    kind: Misbehaviour, messages: list[bank_pb.ListCardsResponse], full_number: str | None
) -> list[bank_pb.ListCardsResponse]:
    """A copy of the correct stream `messages` (cards, then the summary)
    corrupted by `kind`. `full_number` is the first card's full number (None
    for a card-less stream, where the decoy's number is used)."""
    out = [type(m).FromString(m.SerializeToString()) for m in messages]
    summary = out[-1].summary
    if kind is Misbehaviour.SUMMARY_MISMATCH:
        summary.listed_card_count += 1
        summary.debit_card_count += 1
        return out
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
    return out
