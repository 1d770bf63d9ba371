"""Cards issued while the fleet runs (issue 12: "new cards since the last
lookup"): the admin API's IssueCard adds a listed card to a person at one
bank, on top of the bank's records (cardlookup.population, which never
changes). Kept in memory per bank, in issue order, after the record's cards.
"""

from __future__ import annotations

import secrets

from cardlookup.banks import bank_by_code
from cardlookup.checksums import luhn_check_digit
from cardlookup.population import Card, CardKind

_FALLBACK_BINS = {"debit": "621700", "credit": "625900"}


def new_card(bank_code: str, kind: CardKind) -> Card:
    """A fresh, Luhn-valid card of this bank with a random card_ref (never
    derived from the number)."""
    info = bank_by_code(bank_code)
    bins = (info.credit_bins if kind == "credit" else info.debit_bins) if info else ()
    prefix = secrets.choice(bins) if bins else _FALLBACK_BINS[kind]
    length = 16
    body = prefix + "".join(str(secrets.randbelow(10)) for _ in range(length - len(prefix) - 1))
    return Card(bank_code, body + luhn_check_digit(body), kind, f"n{secrets.token_hex(12)}")


class IssuedCards:
    """One bank's cards issued at run time, by ID number."""

    def __init__(self) -> None:
        self._cards: dict[str, list[Card]] = {}

    def issue(self, bank_code: str, id_number: str, kind: CardKind) -> Card:
        card = new_card(bank_code, kind)
        self._cards.setdefault(id_number, []).append(card)
        return card

    def of(self, id_number: str) -> tuple[Card, ...]:
        return tuple(self._cards.get(id_number, ()))
