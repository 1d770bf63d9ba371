"""hub.keys.user_sealing: sealing to a password-derived X25519 key (issue 12)."""

from __future__ import annotations

import argon2
import pytest
from cryptography.exceptions import InvalidTag

from hub.keys.crypto import Envelope, Sealed
from hub.keys.user_sealing import (
    NotUserSealed,
    derive_private_key,
    epoch_of,
    is_user_sealed,
    new_salt,
    open_with,
    public_bytes,
    reseal,
    seal_to,
)

# Cheap parameters: these tests are about the construction, not the cost.
CHEAP = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=8, parallelism=1
)
PEPPER = b"p" * 32


def test_a_sealed_item_opens_only_with_the_password_and_its_own_context() -> None:
    salt = new_salt()
    private = derive_private_key("123456", salt, PEPPER, CHEAP)
    sealed = seal_to(public_bytes(private.public_key()), 3, b"the report", b"report:q1")
    assert is_user_sealed(sealed) and epoch_of(sealed) == 3
    assert open_with(derive_private_key("123456", salt, PEPPER, CHEAP), sealed, b"report:q1") == b"the report"
    with pytest.raises(InvalidTag):
        open_with(derive_private_key("654321", salt, PEPPER, CHEAP), sealed, b"report:q1")
    with pytest.raises(InvalidTag):  # another salt: another key
        open_with(derive_private_key("123456", new_salt(), PEPPER, CHEAP), sealed, b"report:q1")
    with pytest.raises(InvalidTag):  # another pepper (index key): another key
        open_with(derive_private_key("123456", salt, b"q" * 32, CHEAP), sealed, b"report:q1")
    with pytest.raises(InvalidTag):  # moved to another query's row
        open_with(private, sealed, b"report:q2")
    tampered_epoch = Sealed(sealed.wrapped_key[:2] + b"\x00\x00\x00\x09" + sealed.wrapped_key[6:], sealed.ciphertext)
    with pytest.raises(InvalidTag):  # the header is authenticated
        open_with(private, tampered_epoch, b"report:q1")


def test_reseal_moves_an_item_to_a_new_key() -> None:
    old = derive_private_key("111111", new_salt(), PEPPER, CHEAP)
    new = derive_private_key("222222", new_salt(), PEPPER, CHEAP)
    sealed = seal_to(public_bytes(old.public_key()), 1, b"x", b"report:q")
    moved = reseal(old, sealed, public_bytes(new.public_key()), 2, b"report:q")
    assert epoch_of(moved) == 2 and open_with(new, moved, b"report:q") == b"x"
    with pytest.raises(InvalidTag):
        open_with(old, moved, b"report:q")


def test_envelope_items_are_never_taken_for_user_sealed_ones() -> None:
    envelope = Envelope(b"k" * 32)
    for _ in range(50):
        item = envelope.seal(b"x", b"report:q")
        assert not is_user_sealed(item)
        with pytest.raises(NotUserSealed):
            epoch_of(item)
