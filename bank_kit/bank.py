"""The bank's side of cardlookup.bank.v1: one ListCards call, step by step.

Read this file top to bottom; it follows docs/bank-integration.md:

1. validate the request (INVALID_ARGUMENT, INVALID_REQUEST);
2. verify the hub's consent before reading any customer data
   (PERMISSION_DENIED, CONSENT_*), the ten steps in their order;
3. look the subject up in your records (an unknown person gets an empty
   answer, never NOT_FOUND);
4. mask every card (first 4, last 4, length, a keyed-MAC card_ref) and count
   the cards you may not list under one R13 reason each;
5. stream the cards, then the summary.

Only grpcio, grpcio-status, protobuf and cryptography are used, plus the code
generated from protos/cardlookup/bank/v1/card_directory.proto. The caller
check (only the hub may call) is in server.py, as a server interceptor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from cardlookup.bank.v1 import card_directory_pb2 as pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as pb_grpc

DOMAIN = "cardlookup.bank.v1"
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_NAME_LENGTH = 64
# Always fullmatch: a pattern must match the WHOLE value. (`re.match` with a
# `$` anchor lets a trailing newline through; never strip values either.)
QUERY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# R13: a card with several conditions counts once, under the first of these.
R13_PRECEDENCE = ("ID_DOCUMENT_EXPIRED", "NO_PHONE_ON_FILE", "CARD_NOT_PRESENT_DISABLED")
REASON_VALUES = {
    "NO_PHONE_ON_FILE": pb.UNLISTED_REASON_NO_PHONE_ON_FILE,
    "ID_DOCUMENT_EXPIRED": pb.UNLISTED_REASON_ID_DOCUMENT_EXPIRED,
    "CARD_NOT_PRESENT_DISABLED": pb.UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED,
}
CARD_TYPES = {"debit": pb.CARD_TYPE_DEBIT, "credit": pb.CARD_TYPE_CREDIT}


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class Card:
    """A card as your core banking system holds it: the full number stays here."""

    number: str
    kind: str  # "debit" or "credit"
    conditions: frozenset[str] = frozenset()  # R13 conditions; empty = listed


@dataclass(frozen=True)
class Customer:
    full_name: str
    cards: tuple[Card, ...]


class Records:
    """Replace with a query of your own systems: id_number -> Customer.
    This one reads a JSON file (example_records.json shows the shape)."""

    def __init__(self, customers: Mapping[str, Customer]) -> None:
        self._customers = dict(customers)

    @classmethod
    def from_json(cls, path: Path) -> Records:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            {
                id_number: Customer(
                    c["full_name"],
                    tuple(Card(k["number"], k["kind"], frozenset(k.get("conditions", ()))) for k in c["cards"]),
                )
                for id_number, c in raw["customers"].items()
            }
        )

    def find(self, id_number: str) -> Customer | None:
        return self._customers.get(id_number)


# ------------------------------------------------------------------ refusals


class Refusal(Exception):
    """Ends the call with `code` and a google.rpc.ErrorInfo `reason`. The
    message never carries a name, ID number, phone or card number."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.field = code, reason, message, field


def abort(context: grpc.ServicerContext, refusal: Refusal) -> NoReturn:
    info = error_details_pb2.ErrorInfo(reason=refusal.reason, domain=DOMAIN)
    if refusal.field:
        info.metadata["field"] = refusal.field
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=refusal.code.value[0], message=refusal.message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status raises")  # pragma: no cover


def invalid(field: str, message: str) -> Refusal:
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", message, field)


def denied(reason: str, message: str) -> Refusal:
    return Refusal(grpc.StatusCode.PERMISSION_DENIED, reason, message)


# ------------------------------------------------------------------ 1. validate


def is_valid_id_number(value: str) -> bool:
    if not ID_NUMBER.fullmatch(value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17]


def validate(request: pb.ListCardsRequest) -> None:
    if not QUERY_ID.fullmatch(request.query_id):
        raise invalid("query_id", "query_id must be a lowercase UUID")
    name = request.subject.full_name
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise invalid("subject.full_name", "full_name must be 1 to 64 characters")
    if not name.isprintable() or name != name.strip():  # a trailing newline is refused
        raise invalid("subject.full_name", "full_name must be printable characters on one line")
    if not is_valid_id_number(request.subject.id_number):
        raise invalid("subject.id_number", "id_number must be 18 characters with a valid check character")
    signed = request.consent
    if not (signed.consent or signed.signature or signed.key_id):
        raise invalid("consent", "consent is required")


# ------------------------------------------------------------------ 2. consent


def subject_digest(query_id: str, id_number: str, full_name: str) -> bytes:
    text = f"cardlookup.bank.v1/subject\n{query_id}\n{id_number}\n{full_name}"
    return hashlib.sha256(text.encode("utf-8")).digest()


def verify_consent(
    request: pb.ListCardsRequest, keys: Mapping[str, Ed25519PublicKey], bank_code: str, now: dt.datetime
) -> None:
    """The ten steps of the guide, in order; the first failure refuses."""
    signed = request.consent
    key = keys.get(signed.key_id)
    if key is None:  # 1
        raise denied("CONSENT_UNKNOWN_KEY", "the consent is signed with a key this bank does not trust")
    try:  # 2: over the bytes exactly as received, before parsing them
        key.verify(signed.signature, signed.consent)
    except InvalidSignature:
        raise denied("CONSENT_SIGNATURE_INVALID", "the consent signature does not verify") from None
    try:  # 3
        consent = pb.Consent.FromString(signed.consent)
    except DecodeError:
        raise denied("CONSENT_MALFORMED", "the consent bytes are not a Consent") from None
    if consent.scope != pb.CONSENT_SCOPE_LIST_MASKED_CARDS:  # 4
        raise denied("CONSENT_SCOPE_INVALID", "the consent does not allow listing masked cards")
    if consent.bank_code != bank_code:  # 5
        raise denied("CONSENT_WRONG_BANK", "the consent is for another bank")
    if consent.query_id != request.query_id:  # 6
        raise denied("CONSENT_WRONG_QUERY", "the consent is for another query")
    subject = request.subject
    digest = subject_digest(request.query_id, subject.id_number, subject.full_name)
    if not hmac.compare_digest(digest, consent.subject_digest):  # 7
        raise denied("CONSENT_SUBJECT_MISMATCH", "the consent is for another subject")
    if not consent.HasField("issue_time") or not consent.HasField("expire_time"):  # 8
        raise denied("CONSENT_MALFORMED", "the consent lacks its issue or expire time")
    if consent.issue_time.ToDatetime(dt.UTC) - CLOCK_SKEW > now:  # 9
        raise denied("CONSENT_NOT_YET_VALID", "the consent is issued in the future")
    if now >= consent.expire_time.ToDatetime(dt.UTC):  # 10
        raise denied("CONSENT_EXPIRED", "the consent has expired")


# ------------------------------------------------------------------ 3-5. answer


def card_ref(secret: bytes, number: str) -> str:
    """Stable, unique, and not derivable into the number: a keyed MAC (a plain
    hash of a card number is easy to brute-force)."""
    return hmac.new(secret, number.encode(), hashlib.sha256).hexdigest()[:32]


def answer(customer: Customer | None, secret: bytes) -> Iterator[pb.ListCardsResponse]:
    """The masked stream: listed cards in a stable order, then the summary."""
    cards = customer.cards if customer is not None else ()
    listed = [c for c in cards if not c.conditions]
    for card in listed:
        yield pb.ListCardsResponse(
            card=pb.MaskedCard(
                card_type=CARD_TYPES[card.kind],
                first_four=card.number[:4],
                last_four=card.number[-4:],
                number_length=len(card.number),
                card_ref=card_ref(secret, card.number),
            )
        )
    # R13: one card, one reason, the first condition by precedence.
    unlisted = Counter(next(r for r in R13_PRECEDENCE if r in c.conditions) for c in cards if c.conditions)
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
    """The synchronous servicer. The answer is a pure function of the
    records, so a retry of the same query_id gets the same stream (keep the
    first answer per query_id for 24 h if your records change within a day)."""

    def __init__(
        self,
        bank_code: str,
        records: Records,
        consent_keys: Mapping[str, Ed25519PublicKey],
        card_ref_secret: bytes,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._bank_code = bank_code
        self._records = records
        self._keys = dict(consent_keys)
        self._secret = card_ref_secret
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def ListCards(self, request: pb.ListCardsRequest, context: grpc.ServicerContext) -> Iterator[pb.ListCardsResponse]:
        try:
            validate(request)
            verify_consent(request, self._keys, self._bank_code, self._now())
        except Refusal as refusal:
            abort(context, refusal)
        customer = self._records.find(request.subject.id_number)
        if customer is not None and customer.full_name != request.subject.full_name:
            customer = None  # the name does not match our records: answer as for a stranger
        yield from answer(customer, self._secret)
