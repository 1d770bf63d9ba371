from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag

from hub.keys.crypto import Envelope, KeyedHash, Sealed


def test_seal_and_open_round_trip_without_plaintext_in_storage() -> None:
    env = Envelope(os.urandom(32))
    secret = b"6222021234567890123"
    sealed = env.seal(secret, b"report:q1")
    assert secret not in sealed.ciphertext and secret not in sealed.wrapped_key
    assert env.open(sealed, b"report:q1") == secret
    assert env.seal(secret, b"report:q1").ciphertext != sealed.ciphertext  # fresh key and nonce


def test_moved_or_tampered_ciphertext_does_not_open() -> None:
    env = Envelope(os.urandom(32))
    sealed = env.seal(b"data", b"report:q1")
    with pytest.raises(InvalidTag):
        env.open(sealed, b"report:q2")
    flipped = bytes([sealed.ciphertext[-1] ^ 1])
    with pytest.raises(InvalidTag):
        env.open(Sealed(sealed.wrapped_key, sealed.ciphertext[:-1] + flipped), b"report:q1")


def test_another_kek_cannot_unwrap() -> None:
    sealed = Envelope(os.urandom(32)).seal(b"data", b"c")
    with pytest.raises(InvalidTag):
        Envelope(os.urandom(32)).open(sealed, b"c")


def test_keyed_hash_is_keyed_and_domain_separated() -> None:
    key = os.urandom(32)
    h = KeyedHash(key)
    assert h.digest("11010519491231002X", "id_number") == KeyedHash(key).digest("11010519491231002X", "id_number")
    assert h.digest("11010519491231002X", "id_number") != KeyedHash(os.urandom(32)).digest(
        "11010519491231002X", "id_number"
    )
    assert h.digest("x", "id_number") != h.digest("x", "phone")
