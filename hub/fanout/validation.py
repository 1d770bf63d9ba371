"""Validation of a bank's ListCards answer (R8 defence in depth).

A bank is trusted to identify itself (mTLS) but not to follow the contract.
`AnswerValidator` checks every streamed message as it arrives and keeps only
the masked fields the report needs; the first violation raises
`AnswerRejected` with a machine-readable reason, and the whole answer of
that bank is discarded (never stored, never logged).

Card numbers are looked for after removing separators (anything that is
neither a letter nor a digit: `-`, `_`, spaces, dots, slashes..., after
Unicode NFKC so full-width digits count), in every string of the message
and in its unknown fields (fields a newer or hostile bank added: their
bytes, nested messages and numbers are searched too). Unknown fields are
then dropped (DiscardUnknownFields): nothing the hub did not ask for is
ever kept, stored or re-encoded.

Reasons (recorded as the bank's outcome):
  FULL_CARD_NUMBER    a field, or an unknown field, holds something that
                      looks like a card number (separators removed)
  BAD_DIGITS          first/last four are not exactly 4 ASCII digits, or the
                      stated length is outside 13..19
  UNKNOWN_CARD_TYPE   card type unspecified or unknown
  BAD_CARD_REF        card reference empty, too long, bad characters, or repeated
  SUMMARY_MISMATCH    the summary's counts disagree with the streamed cards,
                      or its unlisted counts are malformed
  MESSAGE_TOO_LARGE   a message exceeds MAX_MESSAGE_BYTES
  MALFORMED_MESSAGE   a message is not valid protobuf (grpc could not decode it)
  TOO_MANY_CARDS      more than MAX_CARDS cards
  NO_SUMMARY          the stream ended without a summary
  MESSAGE_AFTER_SUMMARY / EMPTY_MESSAGE   stream shape violations
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import is_luhn_valid
from hub.core.domain import CardKind, ReportCard

MAX_MESSAGE_BYTES = 1024
"""A masked card or a summary is well under 200 bytes; anything near this
limit is not a contract message."""
MAX_CARDS = 200
"""No real person holds more cards at one bank; a longer answer is absurd."""
MAX_UNLISTED = 1000

_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_CARD_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LONG_DIGIT_RUN = re.compile(r"[0-9]{13,}")
_NOT_ALNUM_ASCII = re.compile(r"[^A-Za-z0-9]+")
_MAX_UNKNOWN_DEPTH = 8

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


def without_separators(text: str) -> str:
    """`text` with every character that is neither a letter nor a digit
    removed, after NFKC (full-width digits become ASCII)."""
    if text.isascii():  # NFKC leaves ASCII as it is: skip the normalisation
        return _NOT_ALNUM_ASCII.sub("", text)
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c.isalnum())


def looks_like_card_number(text: str) -> bool:
    """True if `text` holds 13 or more digits in a row once separators are
    removed: no masked field may."""
    if len(text) < 13 and text.isascii():
        return False  # ASCII has no character NFKC expands: fewer than 13 digits
    return _LONG_DIGIT_RUN.search(without_separators(text)) is not None


def reveals_number(card_ref: str, card: bank_pb.MaskedCard) -> bool:
    """True if `card_ref` embeds this card's full number, separators
    removed: a Luhn-valid run of 13-19 digits that starts and ends with the
    masked digits. (A plain 13-digit test would misfire on honest
    references such as dates and sequence numbers.)"""
    for m in _LONG_DIGIT_RUN.finditer(without_separators(card_ref)):
        run = m.group()
        for length in range(13, min(19, len(run)) + 1):
            for start in range(len(run) - length + 1):
                candidate = run[start : start + length]
                if (
                    candidate.startswith(card.first_four)
                    and candidate.endswith(card.last_four)
                    and is_luhn_valid(candidate)
                ):
                    return True
    return False


def unknown_field_hides_card_number(message: Message) -> bool:
    """True if an unknown field anywhere in `message` (its sub-messages
    included) holds something that can be a card number: text with 13 or
    more digits in a row once separators are removed, or a number of 13-19
    digits that passes Luhn."""
    return any(_unknown_set_hides(UnknownFieldSet(m), 0) for m in _messages(message))


def _messages(message: Message) -> Iterator[Message]:
    yield message
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        for item in value if descriptor.is_repeated else [value]:
            yield from _messages(item)


def _unknown_set_hides(fields: UnknownFieldSet, depth: int) -> bool:
    for i in range(len(fields)):
        data = fields[i].data
        if isinstance(data, int):
            digits = str(data)
            if 13 <= len(digits) <= 19 and is_luhn_valid(digits):
                return True
        elif isinstance(data, bytes):
            if looks_like_card_number(data.decode("utf-8", "replace")) or _bytes_hide(data, depth):
                return True
        elif depth < _MAX_UNKNOWN_DEPTH and _unknown_set_hides(data, depth + 1):  # a group
            return True
    return False


def _bytes_hide(data: bytes, depth: int) -> bool:
    """Length-delimited bytes may be a nested message: search its fields."""
    if depth >= _MAX_UNKNOWN_DEPTH:
        return False
    nested = empty_pb2.Empty()
    try:
        nested.ParseFromString(data)
    except DecodeError:
        return False
    return _unknown_set_hides(UnknownFieldSet(nested), depth + 1)


class AnswerValidator:
    """Feeds on one attempt's stream; `finish()` returns the answer."""

    def __init__(self, bank_code: str, max_cards: int = MAX_CARDS) -> None:
        self._bank_code = bank_code
        self._max_cards = max_cards
        self._cards: list[ReportCard] = []
        self._refs: set[str] = set()
        self._unlisted: dict[str, int] | None = None

    def feed(self, message: bank_pb.ListCardsResponse | None) -> None:
        if not isinstance(message, bank_pb.ListCardsResponse):
            # grpc hands the stream None for a message its deserializer could
            # not decode (invalid UTF-8, truncated, field number 0...).
            raise AnswerRejected("MALFORMED_MESSAGE")
        if message.ByteSize() > MAX_MESSAGE_BYTES:
            raise AnswerRejected("MESSAGE_TOO_LARGE")
        if unknown_field_hides_card_number(message):
            raise AnswerRejected("FULL_CARD_NUMBER")
        message.DiscardUnknownFields()
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
