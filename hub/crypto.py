"""The hub's cryptography: envelope encryption at rest, keyed hashes for
look-ups, and the consent signer.

Envelope encryption (R8, R14): every sealed item gets a fresh 256-bit data
key (DEK); the DEK encrypts the item with AES-256-GCM, and is itself wrapped
(AES-256-GCM) by the operator's key-encryption key (KEK). The store keeps
only the wrapped DEK and the ciphertext. Deleting the wrapped DEK makes the
ciphertext unreadable even from a backup or a disk image (crypto-shredding),
which is how reports expire (R11).

Keyed hash: ID numbers are found by HMAC-SHA256 under the index key, so the
store can answer "is this person enrolled" without holding the number in
clear, and a stolen database cannot be brute-forced without the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.consent import list_cards_request, open_card_case_request
from cardlookup.pki import load_ed25519_private, load_secret
from hub.config import HubConfig

_NONCE = 12


@dataclass(frozen=True)
class Sealed:
    """What the store keeps for one encrypted item."""

    wrapped_key: bytes
    """The item's data key, encrypted under the KEK (nonce + ciphertext)."""
    ciphertext: bytes
    """The item, encrypted under the data key (nonce + ciphertext)."""


class Envelope:
    """Seals and opens items under per-item data keys wrapped by a KEK."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._kek = AESGCM(kek)

    def seal(self, plaintext: bytes, context: bytes) -> Sealed:
        """`context` (e.g. b"report:<query id>") is bound as associated data,
        so a ciphertext moved to another row fails to open."""
        dek = AESGCM.generate_key(bit_length=256)
        wrap_nonce, data_nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        wrapped = wrap_nonce + self._kek.encrypt(wrap_nonce, dek, b"dek:" + context)
        ciphertext = data_nonce + AESGCM(dek).encrypt(data_nonce, plaintext, context)
        return Sealed(wrapped, ciphertext)

    def open(self, sealed: Sealed, context: bytes) -> bytes:
        """Raises cryptography.exceptions.InvalidTag on any tampering."""
        w = sealed.wrapped_key
        dek = self._kek.decrypt(w[:_NONCE], w[_NONCE:], b"dek:" + context)
        c = sealed.ciphertext
        return AESGCM(dek).decrypt(c[:_NONCE], c[_NONCE:], context)


class KeyedHash:
    """HMAC-SHA256 for looking up sensitive values without storing them."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the index key must be at least 32 bytes")
        self._key = key

    def digest(self, value: str, purpose: str) -> str:
        """Hex digest of `value`; `purpose` (e.g. "id_number") separates
        domains so equal values of different kinds do not collide."""
        return hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


class ConsentSigner:
    """Builds each bank's request with a consent signed for it (R4): one
    signature per bank per query."""

    def __init__(self, key: Ed25519PrivateKey, key_id: str) -> None:
        self._key = key
        self.key_id = key_id

    def list_cards_request(
        self,
        *,
        query_id: str,
        bank_code: str,
        full_name: str,
        id_number: str,
        issue_time: dt.datetime,
        expire_time: dt.datetime,
        consent_text_version: str,
    ) -> bank_pb.ListCardsRequest:
        return list_cards_request(
            self._key,
            self.key_id,
            query_id=query_id,
            bank_code=bank_code,
            id_number=id_number,
            full_name=full_name,
            issue_time=issue_time,
            expire_time=expire_time,
            consent_text_version=consent_text_version,
        )

    def open_card_case_request(
        self,
        *,
        query_id: str,
        bank_code: str,
        full_name: str,
        id_number: str,
        card_ref: str,
        kind: bank_pb.CardCaseKind,
        issue_time: dt.datetime,
        expire_time: dt.datetime,
        consent_text_version: str,
    ) -> bank_pb.OpenCardCaseRequest:
        """Issue 12 ("not my card"): a case request with a consent signed
        for that one card (scope OPEN_CARD_CASE)."""
        return open_card_case_request(
            self._key,
            self.key_id,
            query_id=query_id,
            bank_code=bank_code,
            id_number=id_number,
            full_name=full_name,
            card_ref=card_ref,
            kind=kind,
            issue_time=issue_time,
            expire_time=expire_time,
            consent_text_version=consent_text_version,
        )


@dataclass(frozen=True)
class HubKeys:
    envelope: Envelope
    keyed_hash: KeyedHash
    consent_signer: ConsentSigner

    @classmethod
    def load(cls, config: HubConfig) -> HubKeys:
        return cls(
            envelope=Envelope(load_secret(config.key_encryption_key)),
            keyed_hash=KeyedHash(load_secret(config.index_key)),
            consent_signer=ConsentSigner(load_ed25519_private(config.consent_signing_key), config.consent_key_id),
        )
