"""Validation of a bank's ListCards answer (R8 defence in depth).

A bank is trusted to identify itself (mTLS) but not to follow the contract.
`AnswerValidator` checks every streamed message as it arrives and keeps only
the masked fields the report needs; the first violation raises
`AnswerRejected` with a machine-readable reason, and the whole answer of
that bank is discarded (never stored, never logged).

Reasons (recorded as the bank's outcome):
  FULL_CARD_NUMBER    a field holds something that looks like a card number
  BAD_DIGITS          first/last four are not exactly 4 ASCII digits, or the
                      stated length is outside 13..19
  UNKNOWN_CARD_TYPE   card type unspecified or unknown
  BAD_CARD_REF        card reference empty, too long, bad characters, or repeated
  SUMMARY_MISMATCH    the summary's counts disagree with the streamed cards,
                      or its unlisted counts are malformed
  MESSAGE_TOO_LARGE   a message exceeds MAX_MESSAGE_BYTES
  TOO_MANY_CARDS      more than MAX_CARDS cards
  NO_SUMMARY          the stream ended without a summary
  MESSAGE_AFTER_SUMMARY / EMPTY_MESSAGE   stream shape violations
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import is_luhn_valid
from hub.domain import CardKind, ReportCard

MAX_MESSAGE_BYTES = 1024
"""A masked card or a summary is well under 200 bytes; anything near this
limit is not a contract message."""
MAX_CARDS = 200
"""No real person holds more cards at one bank; a longer answer is absurd."""
MAX_UNLISTED = 1000

_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_CARD_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIGIT_RUN = re.compile(r"[0-9][0-9 -]{10,}[0-9]")

_KINDS: dict[int, CardKind] = {bank_pb.CARD_TYPE_DEBIT: "debit", bank_pb.CARD_TYPE_CREDIT: "credit"}
UNLISTED_REASON_NAMES: dict[int, str] = {
    bank_pb.UNLISTED_REASON_NO_PHONE_ON_FILE: "NO_PHONE_ON_FILE",
    bank_pb.UNLISTED_REASON_ID_DOCUMENT_EXPIRED: "ID_DOCUMENT_EXPIRED",
    bank_pb.UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED: "CARD_NOT_PRESENT_DISABLED",
}


class AnswerRejected(Exception):
    """The bank's answer breaks the contract; `reason` is recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class BankAnswer:
    """A validated, masked answer of one bank."""

    bank_code: str
    cards: tuple[ReportCard, ...]
    unlisted: dict[str, int] = field(default_factory=dict)

    @property
    def debit_count(self) -> int:
        return sum(1 for c in self.cards if c.kind == "debit")

    @property
    def credit_count(self) -> int:
        return sum(1 for c in self.cards if c.kind == "credit")


def looks_like_card_number(text: str) -> bool:
    """True if `text` holds a run of 13 or more digits (spaces or dashes
    between them allowed): no masked field may."""
    return any(sum(c.isdigit() for c in m.group()) >= 13 for m in _DIGIT_RUN.finditer(text))


def reveals_number(card_ref: str, card: bank_pb.MaskedCard) -> bool:
    """True if `card_ref` embeds this card's full number: a Luhn-valid digit
    run of the stated length that starts and ends with the masked digits.
    (A plain 13-digit test would misfire on random hex references.)"""
    for m in re.finditer(r"[0-9]{13,}", card_ref):
        run = m.group()
        for start in range(len(run) - card.number_length + 1):
            candidate = run[start : start + card.number_length]
            if (
                candidate.startswith(card.first_four)
                and candidate.endswith(card.last_four)
                and is_luhn_valid(candidate)
            ):
                return True
    return False


class AnswerValidator:
    """Feeds on one attempt's stream; `finish()` returns the answer."""

    def __init__(self, bank_code: str, max_cards: int = MAX_CARDS) -> None:
        self._bank_code = bank_code
        self._max_cards = max_cards
        self._cards: list[ReportCard] = []
        self._refs: set[str] = set()
        self._unlisted: dict[str, int] | None = None

    def feed(self, message: bank_pb.ListCardsResponse) -> None:
        if message.ByteSize() > MAX_MESSAGE_BYTES:
            raise AnswerRejected("MESSAGE_TOO_LARGE")
        if self._unlisted is not None:
            raise AnswerRejected("MESSAGE_AFTER_SUMMARY")
        which = message.WhichOneof("item")
        if which == "card":
            self._card(message.card)
        elif which == "summary":
            self._summary(message.summary)
        else:
            raise AnswerRejected("EMPTY_MESSAGE")

    def finish(self) -> BankAnswer:
        """Called when the bank closed the stream with OK."""
        if self._unlisted is None:
            raise AnswerRejected("NO_SUMMARY")
        return BankAnswer(self._bank_code, tuple(self._cards), dict(self._unlisted))

    def _card(self, card: bank_pb.MaskedCard) -> None:
        if looks_like_card_number(card.first_four) or looks_like_card_number(card.last_four):
            raise AnswerRejected("FULL_CARD_NUMBER")
        if 13 <= card.number_length <= 19 and reveals_number(card.card_ref, card):
            raise AnswerRejected("FULL_CARD_NUMBER")
        if not (_FOUR_DIGITS.fullmatch(card.first_four) and _FOUR_DIGITS.fullmatch(card.last_four)):
            raise AnswerRejected("BAD_DIGITS")
        if not 13 <= card.number_length <= 19:
            raise AnswerRejected("BAD_DIGITS")
        kind = _KINDS.get(card.card_type)
        if kind is None:
            raise AnswerRejected("UNKNOWN_CARD_TYPE")
        if not _CARD_REF.fullmatch(card.card_ref) or card.card_ref in self._refs:
            raise AnswerRejected("BAD_CARD_REF")
        if len(self._cards) >= self._max_cards:
            raise AnswerRejected("TOO_MANY_CARDS")
        self._refs.add(card.card_ref)
        self._cards.append(
            ReportCard(self._bank_code, kind, card.first_four, card.last_four, card.number_length, card.card_ref)
        )

    def _summary(self, summary: bank_pb.ListCardsSummary) -> None:
        kinds = Counter(c.kind for c in self._cards)
        if (
            summary.listed_card_count != len(self._cards)
            or summary.debit_card_count != kinds["debit"]
            or summary.credit_card_count != kinds["credit"]
        ):
            raise AnswerRejected("SUMMARY_MISMATCH")
        unlisted: dict[str, int] = {}
        for entry in summary.unlisted:
            name = UNLISTED_REASON_NAMES.get(entry.reason)
            if name is None or name in unlisted or not 1 <= entry.card_count <= MAX_UNLISTED:
                raise AnswerRejected("SUMMARY_MISMATCH")
            unlisted[name] = entry.card_count
        self._unlisted = unlisted
