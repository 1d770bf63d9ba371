"""The bank's side of cardlookup.bank.v1: ListCards, step by step.

Read this file top to bottom; it follows docs/bank-integration.md:

1. validate the request (INVALID_ARGUMENT, INVALID_REQUEST);
2. verify the hub's consent before reading any customer data
   (PERMISSION_DENIED, CONSENT_*), the ten steps in their order (consent.py);
3. look the subject up in your records, the one seam (records.py): an
   unknown person gets an empty answer, never NOT_FOUND; records that cannot
   answer end the call UNAVAILABLE with a reason;
4. mask every card (first 4, last 4, length, a keyed-MAC card_ref) and count
   the cards you may not list under one R13 reason each;
5. stream the cards, then the summary.

The optional card cases (OpenCardCase) are in cases.py; the caller check
(only the hub may call any bank service) is in server.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from bank_kit.audit import AuditLog
from bank_kit.consent import SCOPES, ConsentVerifier, Refusal, abort, validate
from bank_kit.contract import card_directory_pb2 as pb
from bank_kit.contract import card_directory_pb2_grpc as pb_grpc
from bank_kit.records import R13_CONDITIONS, Card, Customer, DataSource, SourceUnavailable

REASON_VALUES = {
    "NO_PHONE_ON_FILE": pb.UNLISTED_REASON_NO_PHONE_ON_FILE,
    "ID_DOCUMENT_EXPIRED": pb.UNLISTED_REASON_ID_DOCUMENT_EXPIRED,
    "CARD_NOT_PRESENT_DISABLED": pb.UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED,
}
CARD_TYPES = {"debit": pb.CARD_TYPE_DEBIT, "credit": pb.CARD_TYPE_CREDIT}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Desk:
    """What every bank service of the kit shares: the bank's code and
    consent keys (the verifier), your records, the card_ref secret, the
    clock and the audit log."""

    verifier: ConsentVerifier
    records: DataSource
    card_ref_secret: bytes
    now: Callable[[], dt.datetime] = utc_now
    audit: AuditLog = field(default_factory=lambda: AuditLog(None))

    def admit(
        self,
        method: str,
        query_id: str,
        subject: pb.Subject,
        consent: pb.SignedConsent,
        now: dt.datetime,
        card_ref: str | None = None,
    ) -> None:
        """Steps 1 and 2 of every call: validate, then verify the consent
        for the method's scope; the verdict goes to the audit log."""
        validate(query_id, subject, consent)
        seen: list[pb.Consent] = []
        try:
            verified = self.verifier.verify(
                consent, scope=SCOPES[method], query_id=query_id, subject=subject, now=now, card_ref=card_ref, seen=seen
            )
        except Refusal as refusal:
            parsed = seen[0] if seen else None
            self.audit.record(
                now=now, method=method, query_id=query_id, key_id=consent.key_id, consent=parsed, reason=refusal.reason
            )
            raise
        self.audit.record(
            now=now, method=method, query_id=query_id, key_id=consent.key_id, consent=verified, reason=None
        )

    def customer(self, subject: pb.Subject, query_id: str, now: dt.datetime) -> Customer | None:
        """Step 3: the subject's record, None for a stranger or a name that
        does not match ours (answered alike: the answer must not tell them
        apart)."""
        try:
            customer = self.records.find(subject.id_number, query_id, now)
        except SourceUnavailable as down:
            raise Refusal(grpc.StatusCode.UNAVAILABLE, down.reason, "the bank's records cannot answer now") from None
        if customer is None or customer.full_name != subject.full_name:
            return None
        return customer

    def card_ref(self, number: str) -> str:
        """Stable, unique, and not derivable into the number: a keyed MAC (a
        plain hash of a card number is easy to brute-force)."""
        return hmac.new(self.card_ref_secret, number.encode(), hashlib.sha256).hexdigest()[:32]


def unlisted_reason(card: Card) -> str:
    """R13: one card, one reason, the first condition by precedence."""
    return next(r for r in R13_CONDITIONS if r in card.conditions)


def answer(customer: Customer | None, card_ref: Callable[[str], str]) -> Iterator[pb.ListCardsResponse]:
    """Steps 4 and 5, the masked stream: listed cards in a stable order,
    then the summary."""
    cards = customer.cards if customer is not None else ()
    listed = [c for c in cards if not c.conditions]
    for card in listed:
        yield pb.ListCardsResponse(
            card=pb.MaskedCard(
                card_type=CARD_TYPES[card.kind],
                first_four=card.number[:4],
                last_four=card.number[-4:],
                number_length=len(card.number),
                card_ref=card_ref(card.number),
            )
        )
    unlisted = Counter(unlisted_reason(c) for c in cards if c.conditions)
    yield pb.ListCardsResponse(
        summary=pb.ListCardsSummary(
            listed_card_count=len(listed),
            debit_card_count=sum(c.kind == "debit" for c in listed),
            credit_card_count=sum(c.kind == "credit" for c in listed),
            unlisted=[
                pb.UnlistedCardCount(reason=value, card_count=unlisted[name])
                for name, value in REASON_VALUES.items()
                if unlisted[name]
            ],
        )
    )


class Bank(pb_grpc.CardDirectoryServiceServicer):
    """ListCards. The answer is a function of the records at the query's
    time, so a retry of the same query_id gets the same stream; if your
    records change within a day, keep the first answer per query_id for 24 h
    in your DataSource (it is given the query id; SqliteRecords pins the
    query's time)."""

    def __init__(self, desk: Desk) -> None:
        self._desk = desk

    def ListCards(self, request: pb.ListCardsRequest, context: grpc.ServicerContext) -> Iterator[pb.ListCardsResponse]:
        desk = self._desk
        now = desk.now()
        try:
            desk.admit("ListCards", request.query_id, request.subject, request.consent, now)
            customer = desk.customer(request.subject, request.query_id, now)
        except Refusal as refusal:
            abort(context, refusal)
        yield from answer(customer, desk.card_ref)
