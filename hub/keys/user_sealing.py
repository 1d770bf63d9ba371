"""Sealing to the user's payment password: what makes a READY report
readable by its owner only (operator-blind at rest, issue 12).

Key pair. The user's X25519 private key is derived, never stored:
    seed = argon2id(payment password, per-user random salt)      (R10's
           parameters, hub.identity.passwords.DEFAULT_PARAMETERS)
    private key = HKDF-SHA256(seed, salt=pepper, info="cardlookup user key v1")
The pepper is a keyed hash of the user id under the hub's index key: a
thief with the database alone faces a 256-bit key, not the 10^6 six-digit
passwords. The hub stores only the public key, the salt and the key's epoch
(hub.store.user_keys).

Sealing (ECIES): a fresh ephemeral X25519 key pair per item; the shared
secret goes through HKDF-SHA256 (salt = ephemeral public || recipient public)
into a 256-bit AES-GCM key; the associated data names the item (e.g.
b"report:<query id>"), so a ciphertext moved to another row fails to open.
At rest a user-sealed item is a `hub.keys.crypto.Sealed` whose `wrapped_key` is
    TAG (2 bytes) || epoch (4 bytes, big-endian) || ephemeral public (32)
and whose `ciphertext` is nonce (12) || AES-GCM ciphertext. A hub-sealed
(envelope) wrapped key is always 60 bytes, so the two never collide.

Issue 17: items are now sealed with HPKE on arrival (hub.reports.sealing,
cardlookup.sealed_report): their wrapped_key is the 7-byte header
HPKE_TAG || kind (DEVICE or PASSWORD) || epoch, and `open_with` / `reseal`
handle both forms; the ECIES form above stays readable for reports sealed
before.

Only the holder of the password can open: the hub can seal to the user at
any time (the public key suffices) but opens only while a request carries
the password, in memory, keeping nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from dataclasses import dataclass

import argon2
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardlookup import sealed_report
from hub.keys.crypto import Sealed

TAG = b"U1"
"""Marks a user-sealed item's wrapped_key (format version 1)."""
SALT_BYTES = 16
_NONCE = 12
_HEADER = struct.Struct(">2sI32s")
_KEY_INFO = b"cardlookup user key v1"
_SEAL_INFO = b"cardlookup user seal v1"


class NotUserSealed(ValueError):
    """The item is not in the user-sealed format."""


@dataclass(frozen=True)
class UserKeyRecord:
    """What the hub keeps of a user's key pair: no secret."""

    user_id: str
    epoch: int
    """Grows by one each time the password (hence the key) changes; an item
    sealed under an older epoch is unreadable after a reset."""
    public_key: bytes
    salt: bytes


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def derive_private_key(password: str, salt: bytes, pepper: bytes, parameters: argon2.Parameters) -> X25519PrivateKey:
    """The user's private key from the password (CPU- and memory-hard: call
    it off the event loop, see `derive_private_key_async`)."""
    seed = hash_secret_raw(
        password.encode(),
        salt,
        time_cost=parameters.time_cost,
        memory_cost=parameters.memory_cost,
        parallelism=parameters.parallelism,
        hash_len=32,
        type=Type.ID,
    )
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=pepper, info=_KEY_INFO).derive(seed)
    return X25519PrivateKey.from_private_bytes(raw)


async def derive_private_key_async(
    password: str, salt: bytes, pepper: bytes, parameters: argon2.Parameters
) -> X25519PrivateKey:
    return await asyncio.to_thread(derive_private_key, password, salt, pepper, parameters)


def _aead_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=_SEAL_INFO).derive(
        shared
    )
    return AESGCM(key)


def seal_to(recipient_public: bytes, epoch: int, plaintext: bytes, associated_data: bytes) -> Sealed:
    """Seals `plaintext` so that only the holder of the recipient's private
    key (the user's password) can open it."""
    recipient = X25519PublicKey.from_public_bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = public_bytes(ephemeral.public_key())
    aead = _aead_key(ephemeral.exchange(recipient), ephemeral_public, recipient_public)
    nonce = os.urandom(_NONCE)
    header = _HEADER.pack(TAG, epoch, ephemeral_public)
    return Sealed(header, nonce + aead.encrypt(nonce, plaintext, header + associated_data))


HPKE_TAG = b"H1"
"""Issue 17: an item sealed with HPKE (hub.reports.sealing, cardlookup.sealed_report)."""
DEVICE, PASSWORD = b"D", b"P"
"""The key an HPKE-sealed item is sealed to: the device's, or the password's."""
_HPKE_HEADER = struct.Struct(">2scI")


def hpke_header(kind: bytes, epoch: int) -> bytes:
    """HPKE_TAG || kind || epoch (u32 BE): 7 bytes."""
    return _HPKE_HEADER.pack(HPKE_TAG, kind, epoch)


def is_hpke_sealed(sealed: Sealed) -> bool:
    return len(sealed.wrapped_key) == _HPKE_HEADER.size and sealed.wrapped_key[:2] == HPKE_TAG


def hpke_kind(sealed: Sealed) -> bytes:
    if not is_hpke_sealed(sealed):
        raise NotUserSealed("not an HPKE-sealed item")
    return bytes(_HPKE_HEADER.unpack(sealed.wrapped_key)[1])


def is_user_sealed(sealed: Sealed) -> bool:
    """Sealed to the user (issue 12's ECIES or issue 17's HPKE): only a key
    of the user opens it."""
    return is_hpke_sealed(sealed) or (len(sealed.wrapped_key) == _HEADER.size and sealed.wrapped_key[:2] == TAG)


def epoch_of(sealed: Sealed) -> int:
    if is_hpke_sealed(sealed):
        return int(_HPKE_HEADER.unpack(sealed.wrapped_key)[2])
    if not is_user_sealed(sealed):
        raise NotUserSealed("not a user-sealed item")
    return int(_HEADER.unpack(sealed.wrapped_key)[1])


def open_with(private_key: X25519PrivateKey, sealed: Sealed, associated_data: bytes) -> bytes:
    """Raises NotUserSealed, or cryptography.exceptions.InvalidTag for a
    wrong key or any tampering (the header is authenticated too)."""
    if is_hpke_sealed(sealed):
        return _open_hpke(private_key, sealed, associated_data)
    if not is_user_sealed(sealed):
        raise NotUserSealed("not a user-sealed item")
    _, _, ephemeral_public = _HEADER.unpack(sealed.wrapped_key)
    recipient_public = public_bytes(private_key.public_key())
    shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    aead = _aead_key(shared, ephemeral_public, recipient_public)
    c = sealed.ciphertext
    return aead.decrypt(c[:_NONCE], c[_NONCE:], sealed.wrapped_key + associated_data)


def reseal(private_key: X25519PrivateKey, sealed: Sealed, new_public: bytes, new_epoch: int, ad: bytes) -> Sealed:
    """Opens with the old key and seals to the new one (a password change)."""
    if is_hpke_sealed(sealed):
        bundle = sealed_report.reseal_bundle(private_key, sealed.ciphertext, new_public)
        return Sealed(hpke_header(PASSWORD, new_epoch), bundle)
    return seal_to(new_public, new_epoch, open_with(private_key, sealed, ad), ad)


def _open_hpke(private_key: X25519PrivateKey, sealed: Sealed, context: bytes) -> bytes:
    """An HPKE bundle sealed to the password key, opened in the form its
    context's reader expects: b"report:<id>" -> the assembled report (hub.reports.report's
    JSON); b"cards:<id>" -> the new-card record {"f": [...]}."""
    if hpke_kind(sealed) != PASSWORD:
        raise InvalidTag()  # sealed to the device: the password's key cannot open it
    kind, _, query_id = context.decode().partition(":")
    opened = sealed_report.open_bundle(private_key, sealed.ciphertext, query_id)
    if kind == "report":
        return json.dumps(sealed_report.assemble(opened), ensure_ascii=False).encode()
    if kind == "cards":
        return json.dumps({"f": sorted({f for prints in opened["cards"].values() for f in prints})}).encode()
    raise NotUserSealed("an HPKE bundle opens only as a report or a card record")
