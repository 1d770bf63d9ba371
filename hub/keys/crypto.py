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

Key ids (issue 11 item 3): the wrapped DEK records which KEK wrapped it, as
`0x01 | len(key id) | key id | nonce | ciphertext`. Rows sealed before key
ids existed hold the bare 60-byte `nonce | ciphertext`; they are still
opened, by trying the current and the retired KEKs (AES-GCM's tag tells
which one). No schema change: the id travels inside the wrapped-key bytes.
Rotating the KEK = a new current key with a new id, the old one kept as
"previous" until everything it sealed has expired (R11, 7 days).

Custody (issue 11 item 4): a KEK or the consent-signing key may be an HSM
object (hub.keys.hsm) instead of bytes from a file; this module only needs
`encrypt`/`decrypt` (AES-GCM) and `sign` (Ed25519) from them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.consent import ConsentKey, list_cards_request, open_card_case_request
from cardlookup.pki import KEK_ID, load_ed25519_private, load_secret
from hub.core.config import HubConfig

_NONCE = 12
LEGACY_WRAPPED_LENGTH = _NONCE + 32 + 16
"""A wrapped DEK without a key id: nonce + 32-byte key + 16-byte tag."""
WRAPPED_VERSION = 1
"""The first byte of a wrapped DEK that names its KEK: `1 | len | key id | …`."""


class KekUnknown(LookupError):
    """A sealed item names a key-encryption key id that is not configured
    (neither current nor previous, in a file or on the token): retrying does
    not help until the operator lists the key again (issue 24). The message
    starts `KEK_UNKNOWN:<id>`, the line operators grep the log for; the API
    answers KEY_NOT_CONFIGURED (hub.api.interceptors). Not a KeyError, which
    callers read as "the row is gone"."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"KEK_UNKNOWN:{key_id}: the key-encryption key {key_id!r} is not configured")
        self.key_id = key_id

    def __str__(self) -> str:
        return str(self.args[0])


class KeyEncryptionKey(Protocol):
    """AES-256-GCM under a key-encryption key (AESGCM from a file, or an HSM key)."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


def _kek(key: bytes | KeyEncryptionKey) -> KeyEncryptionKey:
    if isinstance(key, bytes):
        if len(key) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        return AESGCM(key)
    return key


def _key_id_bytes(key_id: str) -> bytes:
    raw = key_id.encode()
    if not 0 < len(raw) < 256:
        raise ValueError("a key id must be 1-255 bytes")
    return raw


def wrapped_key_prefix(key_id: str) -> bytes:
    """The first bytes of every data key wrapped under the KEK `key_id`."""
    raw = _key_id_bytes(key_id)
    return bytes([WRAPPED_VERSION, len(raw)]) + raw


@dataclass(frozen=True)
class Sealed:
    """What the store keeps for one encrypted item."""

    wrapped_key: bytes
    """The item's data key, encrypted under the KEK (nonce + ciphertext)."""
    ciphertext: bytes
    """The item, encrypted under the data key (nonce + ciphertext)."""


class Envelope:
    """Seals and opens items under per-item data keys wrapped by a KEK.

    Who invalidates: `rotate` (HubServer.reload) swaps the current and
    retired keys; seal/open read them per call."""

    def __init__(
        self,
        kek: bytes | KeyEncryptionKey,
        key_id: str = KEK_ID,
        previous: Mapping[str, bytes | KeyEncryptionKey] | None = None,
    ) -> None:
        self.rotate(kek, key_id, previous or {})

    @property
    def key_id(self) -> str:
        """The id of the KEK that seals from now on."""
        return self._key_id

    @property
    def key_prefix(self) -> bytes:
        """The first bytes of every wrapped key the current KEK seals from now
        on (`0x01 | len | id`): a stored wrapped key without them is under a
        previous key, or has no id (hub.store.rewrap finds those)."""
        return self._prefix

    @property
    def previous_key_ids(self) -> list[str]:
        """The ids of the retired KEKs this envelope still opens with."""
        return [kid for kid in self._keys if kid != self._key_id]

    def rewrap(self, wrapped_key: bytes, context: bytes) -> bytes:
        """`wrapped_key` (of an item sealed with `context`) wrapped under the
        current KEK: the data key and the item's ciphertext stay as they are
        (issue 24, `cardlookup-admin rewrap`). InvalidTag or KekUnknown as
        `open`."""
        dek = self._unwrap(wrapped_key, b"dek:" + context)
        wrap_nonce = os.urandom(_NONCE)
        return self._prefix + wrap_nonce + self._keys[self._key_id].encrypt(wrap_nonce, dek, b"dek:" + context)

    def rotate(
        self, kek: bytes | KeyEncryptionKey, key_id: str, previous: Mapping[str, bytes | KeyEncryptionKey]
    ) -> None:
        """Seals with `kek` (id `key_id`) from now on; opens with it and with
        the retired `previous` keys."""
        keys = {kid: _kek(k) for kid, k in previous.items()}
        keys[key_id] = _kek(kek)
        self._prefix = wrapped_key_prefix(key_id)
        self._keys, self._key_id = keys, key_id

    def seal(self, plaintext: bytes, context: bytes) -> Sealed:
        """`context` (e.g. b"report:<query id>") is bound as associated data,
        so a ciphertext moved to another row fails to open."""
        dek = AESGCM.generate_key(bit_length=256)
        wrap_nonce, data_nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        kek = self._keys[self._key_id]
        wrapped = self._prefix + wrap_nonce + kek.encrypt(wrap_nonce, dek, b"dek:" + context)
        ciphertext = data_nonce + AESGCM(dek).encrypt(data_nonce, plaintext, context)
        return Sealed(wrapped, ciphertext)

    def open(self, sealed: Sealed, context: bytes) -> bytes:
        """Raises cryptography.exceptions.InvalidTag on any tampering, and
        KekUnknown naming the key id if the KEK that sealed it is not configured."""
        try:
            dek = self._unwrap(sealed.wrapped_key, b"dek:" + context)
            c = sealed.ciphertext
            return AESGCM(dek).decrypt(c[:_NONCE], c[_NONCE:], context)
        except ValueError:  # too short to hold a nonce: not sealed by us
            raise InvalidTag() from None

    @staticmethod
    def key_id_of(wrapped_key: bytes) -> str | None:
        """The id recorded in a wrapped DEK; None for a row sealed before ids."""
        if len(wrapped_key) == LEGACY_WRAPPED_LENGTH:
            return None
        if len(wrapped_key) < 2 or wrapped_key[0] != WRAPPED_VERSION or len(wrapped_key) < 2 + wrapped_key[1]:
            raise InvalidTag()
        try:
            return wrapped_key[2 : 2 + wrapped_key[1]].decode()
        except UnicodeDecodeError:
            raise InvalidTag() from None  # not a wrapped key of ours (a foreign blob, or tampered)

    def _unwrap(self, w: bytes, aad: bytes) -> bytes:
        key_id = self.key_id_of(w)
        if key_id is not None:
            kek = self._keys.get(key_id)
            if kek is None:
                raise KekUnknown(key_id)
            body = w[2 + w[1] :]
            return kek.decrypt(body[:_NONCE], body[_NONCE:], aad)
        for kek in self._keys.values():  # sealed before key ids: the tag tells which key
            try:
                return kek.decrypt(w[:_NONCE], w[_NONCE:], aad)
            except InvalidTag:
                continue
        raise InvalidTag()


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

    def __init__(self, key: ConsentKey, key_id: str) -> None:
        self._key = key
        self.key_id = key_id

    def rotate(self, key: ConsentKey, key_id: str) -> None:
        """Signs with `key` under `key_id` from now on (HubServer.reload).
        Banks must trust the new key id before, and the old one until the
        consents it signed have expired (docs/operations.md)."""
        self._key, self.key_id = key, key_id

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
    hsm_password_pepper: Callable[[str], str] | None = None
    """Issue 17: HMAC of a payment password on the HSM (`[hsm]
    password_pepper_key_label`), or None: the pepper is then derived from the
    index key (hub.identity.passwords)."""

    @classmethod
    def load(cls, config: HubConfig) -> HubKeys:
        kek, consent_key = load_custody(config)
        return cls(
            envelope=Envelope(kek, config.key_encryption_key_id, load_previous_keks(config)),
            keyed_hash=KeyedHash(load_secret(config.index_key)),
            consent_signer=ConsentSigner(consent_key, config.consent_key_id),
            hsm_password_pepper=load_hsm_pepper(config),
        )

    def reload(
        self,
        config: HubConfig,
        custody: Custody | None = None,
        previous: dict[str, bytes | KeyEncryptionKey] | None = None,
    ) -> list[str]:
        """Applies rotated KEKs and consent-signing key (`custody` and the
        `previous` KEKs: loaded by the caller already, see load_custody and
        load_previous_keks); returns what it applied."""
        kek, consent_key = custody if custody is not None else load_custody(config)
        changes = []
        if previous is None:
            previous = load_previous_keks(config)
        self.envelope.rotate(kek, config.key_encryption_key_id, previous)
        changes.append(f"keys: sealing with key-encryption key {config.key_encryption_key_id}")
        self.consent_signer.rotate(consent_key, config.consent_key_id)
        changes.append(f"keys: signing consents with key id {config.consent_key_id}")
        return changes


def load_hsm_pepper(config: HubConfig) -> Callable[[str], str] | None:
    hsm = config.hsm
    if hsm is None or not hsm.password_pepper_key_label:
        return None
    from hub.keys.hsm import shared_session  # a PKCS#11 module is loaded only when [hsm] is configured

    return shared_session(hsm).password_pepper(hsm.password_pepper_key_label).digest


def load_previous_keks(config: HubConfig) -> dict[str, bytes | KeyEncryptionKey]:
    """The retired KEKs by id: files (keys.previous_key_encryption_keys) and
    token objects ([hsm] previous_key_encryption_key_labels, issue 24), so a
    KEK rotation on the token, or a move from files onto it, keeps opening
    everything sealed before."""
    previous: dict[str, bytes | KeyEncryptionKey] = {
        kid: load_secret(path) for kid, path in config.previous_key_encryption_keys.items()
    }
    hsm = config.hsm
    if hsm is not None and hsm.previous_key_encryption_key_labels:
        from hub.keys.hsm import shared_session  # a PKCS#11 module is loaded only when [hsm] is configured

        session = shared_session(hsm)
        for kid, label in hsm.previous_key_encryption_key_labels.items():
            previous[kid] = session.kek(label)
    return previous


Custody = tuple[bytes | KeyEncryptionKey, ConsentKey]
"""The current KEK and consent-signing key, wherever they live."""


def load_custody(config: HubConfig) -> Custody:
    """The current KEK and consent-signing key: from the HSM where the
    configuration names them there (hub.keys.hsm), else from their files."""
    hsm = config.hsm
    kek: bytes | KeyEncryptionKey | None = None
    consent_key: ConsentKey | None = None
    if hsm is not None:
        from hub.keys.hsm import shared_session  # a PKCS#11 module is loaded only when [hsm] is configured

        session = shared_session(hsm)  # one session per process, kept across reloads (issue 24)
        if hsm.key_encryption_key_label:
            kek = session.kek(hsm.key_encryption_key_label)
        if hsm.consent_signing_key_label:
            consent_key = session.consent_key(hsm.consent_signing_key_label)
    return (
        kek if kek is not None else load_secret(config.key_encryption_key),
        consent_key if consent_key is not None else load_ed25519_private(config.consent_signing_key),
    )


def card_fingerprint(keyed_hash: KeyedHash, user_id: str, bank_code: str, card_ref: str) -> str:
    """The new-card record's keyed fingerprint of a card (issue 12): HMAC
    under a per-user key derived from the index key; links nothing without it."""
    key = bytes.fromhex(keyed_hash.digest(user_id, "card_fingerprint_key"))
    return hmac.new(key, f"{bank_code}\n{card_ref}".encode(), hashlib.sha256).hexdigest()
