"""The consent artefact: the hub signs, each bank verifies (R4).

The hub signs the serialized `cardlookup.bank.v1.Consent` bytes with Ed25519;
a bank verifies the signature over the bytes exactly as received and only
then parses them. docs/bank-integration.md describes the same steps for
banks that do not use Python.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb

SUBJECT_DIGEST_PREFIX = "cardlookup.bank.v1/subject\n"
CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far in the future a consent's issue time may be, for clock drift."""


class ConsentKey(Protocol):
    """What signs a consent: an Ed25519PrivateKey from a file, or a key that
    never leaves an HSM (hub.keys.hsm). Both produce plain Ed25519 signatures."""

    def sign(self, data: bytes) -> bytes: ...


def subject_digest(query_id: str, id_number: str, full_name: str) -> bytes:
    """SHA-256 binding a consent to one subject in one query, no raw ID."""
    text = f"{SUBJECT_DIGEST_PREFIX}{query_id}\n{id_number}\n{full_name}"
    return hashlib.sha256(text.encode("utf-8")).digest()


def sign_consent(
    key: ConsentKey,
    key_id: str,
    *,
    query_id: str,
    bank_code: str,
    id_number: str,
    full_name: str,
    issue_time: dt.datetime,
    expire_time: dt.datetime,
    consent_text_version: str,
    scope: bank_pb.ConsentScope = bank_pb.CONSENT_SCOPE_LIST_MASKED_CARDS,
    card_ref: str = "",
) -> bank_pb.SignedConsent:
    """`scope` and `card_ref`: CONSENT_SCOPE_OPEN_CARD_CASE names the one
    card a case may be about (issue 12)."""
    consent = bank_pb.Consent(
        query_id=query_id,
        bank_code=bank_code,
        subject_digest=subject_digest(query_id, id_number, full_name),
        scope=scope,
        consent_text_version=consent_text_version,
        card_ref=card_ref,
    )
    consent.issue_time.FromDatetime(issue_time)
    consent.expire_time.FromDatetime(expire_time)
    payload = consent.SerializeToString(deterministic=True)
    return bank_pb.SignedConsent(consent=payload, signature=key.sign(payload), key_id=key_id)


def list_cards_request(
    key: ConsentKey,
    key_id: str,
    *,
    query_id: str,
    bank_code: str,
    id_number: str,
    full_name: str,
    issue_time: dt.datetime,
    expire_time: dt.datetime,
    consent_text_version: str,
) -> bank_pb.ListCardsRequest:
    """A complete ListCards request: the subject, and a consent for this very
    bank, query and subject signed with `key`."""
    consent = sign_consent(
        key,
        key_id,
        query_id=query_id,
        bank_code=bank_code,
        id_number=id_number,
        full_name=full_name,
        issue_time=issue_time,
        expire_time=expire_time,
        consent_text_version=consent_text_version,
    )
    return bank_pb.ListCardsRequest(
        query_id=query_id,
        subject=bank_pb.Subject(full_name=full_name, id_number=id_number),
        consent=consent,
    )


def open_card_case_request(
    key: ConsentKey,
    key_id: str,
    *,
    query_id: str,
    bank_code: str,
    id_number: str,
    full_name: str,
    card_ref: str,
    kind: bank_pb.CardCaseKind,
    issue_time: dt.datetime,
    expire_time: dt.datetime,
    consent_text_version: str,
) -> bank_pb.OpenCardCaseRequest:
    """A complete OpenCardCase request ("not my card"): the subject, the
    card, and a consent for this case at this bank (scope OPEN_CARD_CASE,
    bound to `card_ref`)."""
    consent = sign_consent(
        key,
        key_id,
        query_id=query_id,
        bank_code=bank_code,
        id_number=id_number,
        full_name=full_name,
        issue_time=issue_time,
        expire_time=expire_time,
        consent_text_version=consent_text_version,
        scope=bank_pb.CONSENT_SCOPE_OPEN_CARD_CASE,
        card_ref=card_ref,
    )
    return bank_pb.OpenCardCaseRequest(
        query_id=query_id,
        subject=bank_pb.Subject(full_name=full_name, id_number=id_number),
        card_ref=card_ref,
        kind=kind,
        consent=consent,
    )


class ConsentError(Exception):
    """A consent that a bank must refuse. `reason` is the ErrorInfo reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedConsent:
    query_id: str
    bank_code: str
    issue_time: dt.datetime
    expire_time: dt.datetime
    consent_text_version: str


def verify_consent(
    signed: bank_pb.SignedConsent,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    *,
    bank_code: str,
    query_id: str,
    id_number: str,
    full_name: str,
    now: dt.datetime,
    scope: bank_pb.ConsentScope = bank_pb.CONSENT_SCOPE_LIST_MASKED_CARDS,
    card_ref: str = "",
) -> VerifiedConsent:
    """Checks a consent as a careful bank does; raises ConsentError.

    Order matters: the signature is checked before the payload is trusted.
    `scope` is what the call needs (ListCards: LIST_MASKED_CARDS; a card
    case: OPEN_CARD_CASE, whose consent must name `card_ref`).
    """
    key = trusted_keys.get(signed.key_id)
    if key is None:
        raise ConsentError("CONSENT_UNKNOWN_KEY", "the consent is signed with a key this bank does not trust")
    try:
        key.verify(signed.signature, signed.consent)
    except InvalidSignature:
        raise ConsentError("CONSENT_SIGNATURE_INVALID", "the consent signature does not verify") from None
    consent = bank_pb.Consent()
    try:
        consent.ParseFromString(signed.consent)
    except DecodeError:
        raise ConsentError("CONSENT_MALFORMED", "the signed consent bytes are not a Consent message") from None
    if consent.scope != scope:
        raise ConsentError("CONSENT_SCOPE_INVALID", "the consent does not allow this call")
    if consent.bank_code != bank_code:
        raise ConsentError("CONSENT_WRONG_BANK", "the consent was issued for another bank")
    if consent.query_id != query_id:
        raise ConsentError("CONSENT_WRONG_QUERY", "the consent was issued for another query")
    if consent.subject_digest != subject_digest(query_id, id_number, full_name):
        raise ConsentError("CONSENT_SUBJECT_MISMATCH", "the consent was issued for another subject")
    if scope == bank_pb.CONSENT_SCOPE_OPEN_CARD_CASE and consent.card_ref != card_ref:
        raise ConsentError("CONSENT_CARD_MISMATCH", "the consent was issued for another card")
    if not consent.HasField("issue_time") or not consent.HasField("expire_time"):
        raise ConsentError("CONSENT_MALFORMED", "the consent lacks its issue or expire time")
    issue = consent.issue_time.ToDatetime(dt.UTC)
    expire = consent.expire_time.ToDatetime(dt.UTC)
    if issue - CLOCK_SKEW > now:
        raise ConsentError("CONSENT_NOT_YET_VALID", "the consent is issued in the future")
    if now >= expire:
        raise ConsentError("CONSENT_EXPIRED", "the consent has expired")
    return VerifiedConsent(
        query_id=consent.query_id,
        bank_code=consent.bank_code,
        issue_time=issue,
        expire_time=expire,
        consent_text_version=consent.consent_text_version,
    )
