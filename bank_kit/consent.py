"""Refusals, request validation and the one consent verifier of the kit.

Every bank service checks its request the same way (docs/bank-integration.md,
"Validating the request" and "Verifying the consent"): the fields it shares
with ListCards, then the consent's ten steps, in order, with the scope the
service requires (`SCOPES`), then, for a card case, that the consent names
the card. The first failure refuses the call with a google.rpc.ErrorInfo
reason and no personal data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import NoReturn

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from bank_kit.contract import card_directory_pb2 as pb

DOMAIN = "cardlookup.bank.v1"
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_NAME_LENGTH = 64
# Always fullmatch: a pattern must match the WHOLE value. (`re.match` with a
# `$` anchor lets a trailing newline through; never strip values either.)
QUERY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")
CARD_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

SCOPES = {
    "ListCards": pb.CONSENT_SCOPE_LIST_MASKED_CARDS,
    "ListCardsSession": pb.CONSENT_SCOPE_LIST_MASKED_CARDS,  # each exchange is a ListCards
    "OpenCardCase": pb.CONSENT_SCOPE_OPEN_CARD_CASE,
}
"""The consent scope each bank method requires (step 4)."""


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


# ------------------------------------------------------------------ validation


def is_valid_id_number(value: str) -> bool:
    if not ID_NUMBER.fullmatch(value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17]


def validate(query_id: str, subject: pb.Subject, consent: pb.SignedConsent) -> None:
    """The fields every bank request has (ListCards, OpenCardCase)."""
    if not QUERY_ID.fullmatch(query_id):
        raise invalid("query_id", "query_id must be a lowercase UUID")
    name = subject.full_name
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise invalid("subject.full_name", "full_name must be 1 to 64 characters")
    if not name.isprintable() or name != name.strip():  # a trailing newline is refused
        raise invalid("subject.full_name", "full_name must be printable characters on one line")
    if not is_valid_id_number(subject.id_number):
        raise invalid("subject.id_number", "id_number must be 18 characters with a valid check character")
    if not (consent.consent or consent.signature or consent.key_id):
        raise invalid("consent", "consent is required")


# ------------------------------------------------------------------ consent


def subject_digest(query_id: str, id_number: str, full_name: str) -> bytes:
    text = f"cardlookup.bank.v1/subject\n{query_id}\n{id_number}\n{full_name}"
    return hashlib.sha256(text.encode("utf-8")).digest()


class ConsentVerifier:
    """The ten steps of the guide, in order, for any scope; then, for a card
    case, that the consent names the request's card (CONSENT_CARD_MISMATCH:
    after step 10, as the guide orders it)."""

    def __init__(self, bank_code: str, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.bank_code = bank_code
        self._keys = dict(keys)

    def verify(
        self,
        signed: pb.SignedConsent,
        *,
        scope: int,
        query_id: str,
        subject: pb.Subject,
        now: dt.datetime,
        card_ref: str | None = None,
        seen: list[pb.Consent] | None = None,
    ) -> pb.Consent:
        """The verified consent, or Refusal. `seen` receives the consent once
        it parses (step 3), for the audit log even when a later step refuses."""
        key = self._keys.get(signed.key_id)
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
        if seen is not None:
            seen.append(consent)
        if consent.scope != scope:  # 4
            raise denied("CONSENT_SCOPE_INVALID", "the consent does not allow this call")
        if consent.bank_code != self.bank_code:  # 5
            raise denied("CONSENT_WRONG_BANK", "the consent is for another bank")
        if consent.query_id != query_id:  # 6
            raise denied("CONSENT_WRONG_QUERY", "the consent is for another query")
        digest = subject_digest(query_id, subject.id_number, subject.full_name)
        if not hmac.compare_digest(digest, consent.subject_digest):  # 7
            raise denied("CONSENT_SUBJECT_MISMATCH", "the consent is for another subject")
        if not consent.HasField("issue_time") or not consent.HasField("expire_time"):  # 8
            raise denied("CONSENT_MALFORMED", "the consent lacks its issue or expire time")
        if consent.issue_time.ToDatetime(dt.UTC) - CLOCK_SKEW > now:  # 9
            raise denied("CONSENT_NOT_YET_VALID", "the consent is issued in the future")
        if now >= consent.expire_time.ToDatetime(dt.UTC):  # 10
            raise denied("CONSENT_EXPIRED", "the consent has expired")
        if card_ref is not None and not hmac.compare_digest(consent.card_ref.encode(), card_ref.encode()):
            raise denied("CONSENT_CARD_MISMATCH", "the consent is for another card")
        return consent
