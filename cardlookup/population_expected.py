"""The expected answer of each person at each bank, as JSON: the ground truth
a test in any language compares a hub report (or a bank's stream) with,
without calling the Python kernel (`cardlookup-population --expected`).

For each bank code, what a correct bank streams for the person and so what
the report's BankSummary and ReportCards hold for that bank when it
answered:

    {"bank_code": "102",
     "debit_card_count": 1, "credit_card_count": 0,      # listed cards by type
     "unlisted_card_count": 1,                            # R13, all reasons
     "unlisted": [{"reason": "UNLISTED_REASON_NO_PHONE_ON_FILE", "card_count": 1}],
     "cards": [{"card_type": "CARD_TYPE_DEBIT", "first_four": "6222",
                "last_four": "0017", "number_length": 19, "card_ref": "c…"}]}

Names are the contract's enum value names (cardlookup.hub.v1 and
cardlookup.bank.v1 share them); `unlisted` lists only reasons with cards, in
the enum's order, one entry per reason (each card counts once, R13); `cards`
are in the order the bank streams them, masked as the bank returns them (the
full number never leaves the bank). A bank that holds nothing for the person
has all counts 0 and empty lists (the report still has its summary).
"""

from __future__ import annotations

from cardlookup.population import UNLISTED_REASONS, ExpectedAnswer, Population

CARD_TYPES = {"debit": "CARD_TYPE_DEBIT", "credit": "CARD_TYPE_CREDIT"}


def answer_json(answer: ExpectedAnswer) -> dict[str, object]:
    return {
        "bank_code": answer.bank_code,
        "debit_card_count": answer.debit_count,
        "credit_card_count": answer.credit_count,
        "unlisted_card_count": sum(answer.unlisted.values()),
        "unlisted": [
            {"reason": f"UNLISTED_REASON_{reason}", "card_count": answer.unlisted[reason]}
            for reason in UNLISTED_REASONS
            if answer.unlisted.get(reason)
        ],
        "cards": [
            {
                "card_type": CARD_TYPES[card.kind],
                "first_four": card.first_four,
                "last_four": card.last_four,
                "number_length": len(card.number),
                "card_ref": card.card_ref,
            }
            for card in answer.listed
        ],
    }


def expected_json(population: Population, id_number: str, bank_codes: tuple[str, ...]) -> dict[str, object]:
    """The person's expected answer at each of `bank_codes`, keyed by code."""
    return {code: answer_json(population.expected_answer(code, id_number)) for code in bank_codes}
