"""Translation of a bank's answer (bank_sim.directory) into the messages of
the ListCards stream (cardlookup.bank.v1)."""

from __future__ import annotations

from bank_sim.directory import Answer, ListedCard
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb

CARD_TYPES = {"debit": bank_pb.CARD_TYPE_DEBIT, "credit": bank_pb.CARD_TYPE_CREDIT}
UNLISTED_REASONS = {
    "NO_PHONE_ON_FILE": bank_pb.UNLISTED_REASON_NO_PHONE_ON_FILE,
    "ID_DOCUMENT_EXPIRED": bank_pb.UNLISTED_REASON_ID_DOCUMENT_EXPIRED,
    "CARD_NOT_PRESENT_DISABLED": bank_pb.UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED,
}


def card_message(card: ListedCard) -> bank_pb.ListCardsResponse:
    return bank_pb.ListCardsResponse(
        card=bank_pb.MaskedCard(
            card_type=CARD_TYPES[card.kind],
            first_four=card.first_four,
            last_four=card.last_four,
            number_length=card.number_length,
            card_ref=card.card_ref,
        )
    )


def summary_message(answer: Answer) -> bank_pb.ListCardsResponse:
    return bank_pb.ListCardsResponse(
        summary=bank_pb.ListCardsSummary(
            listed_card_count=len(answer.cards),
            debit_card_count=answer.debit_count,
            credit_card_count=answer.credit_count,
            unlisted=[
                bank_pb.UnlistedCardCount(reason=UNLISTED_REASONS[reason], card_count=count)
                for reason, count in answer.unlisted
            ],
        )
    )


def answer_messages(answer: Answer) -> list[bank_pb.ListCardsResponse]:
    """The whole correct stream: every card, then the summary."""
    return [*(card_message(c) for c in answer.cards), summary_message(answer)]
