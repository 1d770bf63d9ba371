"""What a careful bank answers to the hub's ListCards: the reference logic.

Bank IT teams: this module is the part of the simulator to read first. It
holds no gRPC code; `bank_sim.servicer` only translates protobuf to and from
these calls. Each ListCards call goes through `CardDirectory.answer`:

1. Validate the request's shape (INVALID_ARGUMENT otherwise).
2. Verify the consent artefact before reading any customer data
   (PERMISSION_DENIED otherwise): the hub's Ed25519 signature over the bytes
   as received, a key id you trust, your own bank code, this query id, the
   subject digest recomputed from the request, and the validity period.
3. Look the subject up in your own records. An unknown subject (or one whose
   name does not match your records) gets an empty list, never NOT_FOUND,
   so the answer reveals nothing about who is a customer.
4. List only cards the user can use remotely (R13): cards with no phone on
   file, an expired ID document, or card-not-present service disabled are
   counted by reason in the summary instead of being listed; a card with
   several of these conditions counts once, under the first in the order
   ID document expired, no phone, card-not-present disabled.
5. Mask: only the first 4 and last 4 digits, the length and the kind leave
   the bank, plus a stable opaque card reference.
6. Answer retries of the same query id exactly as the first time.

The simulated bank's "core banking records" are `cardlookup.population`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bank_sim.issued import IssuedCards
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import is_valid_id_number
from cardlookup.consent import subject_digest, verify_consent
from cardlookup.population import UNLISTED_REASONS, Card, Population, counted_reason

# Always used with fullmatch: the whole value must match, so a trailing
# newline is refused (a `$` anchor with search/match would let it through).
QUERY_ID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_NAME_LENGTH = 64
REMEMBERED_QUERIES = 100_000
"""Answers kept per bank for retries. The answer is a pure function of the
subject, so forgetting an old query id changes nothing; a real bank keeps
them for the query's 24-hour window (R6) in its own database."""


class InvalidRequest(Exception):
    """A malformed request (INVALID_ARGUMENT). `field` names the bad field,
    e.g. "subject.id_number"; the message never repeats its value."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class Lookup:
    """One ListCards request, as plain values."""

    query_id: str
    full_name: str
    id_number: str
    consent: bank_pb.SignedConsent | None
    """None when the request carries no consent at all."""


@dataclass(frozen=True)
class ListedCard:
    """A card as it may leave the bank: masked."""

    kind: Literal["debit", "credit"]
    first_four: str
    last_four: str
    number_length: int
    card_ref: str


@dataclass(frozen=True)
class Answer:
    """The complete answer for one subject: listed cards in order, then the
    count of unlisted cards by R13 reason (reasons with zero are absent)."""

    cards: tuple[ListedCard, ...]
    unlisted: tuple[tuple[str, int], ...]

    @property
    def debit_count(self) -> int:
        return sum(1 for c in self.cards if c.kind == "debit")

    @property
    def credit_count(self) -> int:
        return sum(1 for c in self.cards if c.kind == "credit")


EMPTY_ANSWER = Answer(cards=(), unlisted=())


def validate(lookup: Lookup) -> None:
    """Raises InvalidRequest for the first malformed field."""
    if not QUERY_ID_SHAPE.fullmatch(lookup.query_id):
        raise InvalidRequest("query_id", "must be a lowercase UUID (36 characters)")
    if not lookup.full_name.strip():
        raise InvalidRequest("subject.full_name", "is required")
    if len(lookup.full_name) > MAX_NAME_LENGTH:
        raise InvalidRequest("subject.full_name", f"must be at most {MAX_NAME_LENGTH} characters")
    if not is_name_shaped(lookup.full_name):
        raise InvalidRequest("subject.full_name", "must be printable characters on one line, not padded")
    if not is_valid_id_number(lookup.id_number):
        raise InvalidRequest("subject.id_number", "must be an 18-character GB 11643 ID number with a valid check")
    if lookup.consent is None:
        raise InvalidRequest("consent", "is required")


def is_name_shaped(name: str) -> bool:
    """Printable characters on one line, as the hub accepts names: no control
    or format character (a trailing newline is refused, never stripped), no
    leading or trailing white space. str.isprintable() is False for C* and Z*
    characters other than the ASCII space."""
    return name.isprintable() and name == name.strip()


def mask(card: Card) -> ListedCard:
    """The only view of a card that leaves the bank."""
    return ListedCard(
        kind=card.kind,
        first_four=card.number[:4],
        last_four=card.number[-4:],
        number_length=len(card.number),
        card_ref=card.card_ref,
    )


class CardDirectory:
    """The card directory of one bank over its records (a Population)."""

    def __init__(
        self,
        bank_code: str,
        records: Population,
        trusted_keys: Mapping[str, Ed25519PublicKey],
        remembered: int = REMEMBERED_QUERIES,
        issued: IssuedCards | None = None,
    ) -> None:
        self.bank_code = bank_code
        self._records = records
        self._issued = issued or IssuedCards()
        self._trusted_keys = trusted_keys
        self._remembered = remembered
        # query id -> (subject digest, answer). The digest catches a query id
        # reused for another subject, which a correct hub never does.
        self._answers: OrderedDict[str, tuple[bytes, Answer]] = OrderedDict()

    def answer(self, lookup: Lookup, now: dt.datetime) -> Answer:
        """The bank's answer, or InvalidRequest / ConsentError."""
        validate(lookup)
        return self.answer_validated(lookup, now)

    def answer_validated(self, lookup: Lookup, now: dt.datetime) -> Answer:
        """`answer` for a lookup that already passed `validate` (the
        simulator's lax-validation misbehaviour calls this directly)."""
        if lookup.consent is None:
            raise InvalidRequest("consent", "is required")
        verify_consent(
            lookup.consent,
            self._trusted_keys,
            bank_code=self.bank_code,
            query_id=lookup.query_id,
            id_number=lookup.id_number,
            full_name=lookup.full_name,
            now=now,
        )
        digest = subject_digest(lookup.query_id, lookup.id_number, lookup.full_name)
        remembered = self._answers.get(lookup.query_id)
        if remembered is not None:
            if remembered[0] != digest:
                raise InvalidRequest("query_id", "was already used for another subject")
            self._answers.move_to_end(lookup.query_id)
            return remembered[1]
        answer = self._lookup(lookup.id_number, lookup.full_name)
        self._answers[lookup.query_id] = (digest, answer)
        if len(self._answers) > self._remembered:
            self._answers.popitem(last=False)
        return answer

    def _lookup(self, id_number: str, full_name: str) -> Answer:
        if self._records.holder_name(id_number) != full_name:
            return EMPTY_ANSWER  # unknown, or the name does not match our records
        held = self.cards_held(id_number)
        # R13: one card, one reason, by the documented precedence.
        unlisted = Counter(counted_reason(c.conditions) for c in held if c.conditions)
        return Answer(
            cards=tuple(mask(c) for c in held if not c.conditions),
            unlisted=tuple((r, unlisted[r]) for r in UNLISTED_REASONS if unlisted[r]),
        )

    def unlisted_conditions(self, id_number: str) -> tuple[frozenset[str], ...]:
        """The R13 conditions of each unlisted card held for this ID number.
        Only the simulator's WRONG_REASON_PRECEDENCE misbehaviour uses it."""
        return tuple(c.conditions for c in self.cards_held(id_number) if c.conditions)

    def cards_held(self, id_number: str) -> tuple[Card, ...]:
        """The records' cards, then those issued at run time (admin IssueCard)."""
        return self._records.cards_at(self.bank_code, id_number) + self._issued.of(id_number)

    def full_number(self, id_number: str, card_ref: str) -> str | None:
        """The full number of a held card. Only the simulator's
        FULL_CARD_NUMBER misbehaviour uses it: a real bank never sends it."""
        held = self.cards_held(id_number)
        return next((c.number for c in held if c.card_ref == card_ref), None)
