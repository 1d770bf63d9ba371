"""Key-encryption-key ids (issue 11 item 3): sealed data records which KEK
wrapped its data key inside the wrapped-key bytes, so the KEK rotates
without a schema change; rows sealed before ids existed still open."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.keys.crypto import Envelope, KekUnknown, Sealed


def legacy_seal(kek: bytes, plaintext: bytes, context: bytes) -> Sealed:
    """What hub.keys.crypto wrote before key ids: nonce + ciphertext, 60 bytes."""
    dek = AESGCM.generate_key(bit_length=256)
    wrap_nonce, data_nonce = os.urandom(12), os.urandom(12)
    wrapped = wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, dek, b"dek:" + context)
    return Sealed(wrapped, data_nonce + AESGCM(dek).encrypt(data_nonce, plaintext, context))


def test_sealed_data_names_its_kek_and_rotation_keeps_old_data_readable() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    env = Envelope(k1, "kek-1")
    old = env.seal(b"old report", b"report:q1")
    assert Envelope.key_id_of(old.wrapped_key) == "kek-1"
    env.rotate(k2, "kek-2", {"kek-1": k1})
    new = env.seal(b"new report", b"report:q2")
    assert Envelope.key_id_of(new.wrapped_key) == "kek-2" and env.key_id == "kek-2"
    assert env.open(old, b"report:q1") == b"old report"
    assert env.open(new, b"report:q2") == b"new report"
    # Once the old key is retired for good, what it sealed no longer opens.
    env.rotate(k2, "kek-2", {})
    with pytest.raises(KekUnknown, match="KEK_UNKNOWN:kek-1"):
        env.open(old, b"report:q1")
    assert env.open(new, b"report:q2") == b"new report"


def test_rows_sealed_before_key_ids_still_open_under_current_or_previous_key() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    legacy = legacy_seal(k1, b"subject", b"subject:q1")
    assert len(legacy.wrapped_key) == 60 and Envelope.key_id_of(legacy.wrapped_key) is None
    assert Envelope(k1, "kek-1").open(legacy, b"subject:q1") == b"subject"
    assert Envelope(k2, "kek-2", {"kek-1": k1}).open(legacy, b"subject:q1") == b"subject"
    with pytest.raises(InvalidTag):
        Envelope(k2, "kek-2").open(legacy, b"subject:q1")


def test_a_tampered_key_id_does_not_open() -> None:
    k1 = os.urandom(32)
    env = Envelope(k1, "kek-a", {"kek-b": k1})
    sealed = env.seal(b"x", b"c")
    forged = sealed.wrapped_key.replace(b"kek-a", b"kek-b")
    assert Envelope.key_id_of(forged) == "kek-b"
    # Same key bytes under another id still opens (the id selects, the tag
    # authenticates); another key under the forged id does not.
    with pytest.raises(InvalidTag):
        Envelope(k1, "kek-a", {"kek-b": os.urandom(32)}).open(Sealed(forged, sealed.ciphertext), b"c")


def test_a_foreign_blob_that_looks_versioned_is_invalid_not_a_crash() -> None:
    """Any bytes opened as a wrapped key fail as InvalidTag (found when a
    user-sealed blob began with the version byte and an id of invalid UTF-8)."""
    for blob in (b"\x01\x04\xdf\xff\xfe\xfd" + bytes(60), b"\x01\xff" + bytes(10)):
        with pytest.raises(InvalidTag):
            Envelope.key_id_of(blob)


def test_opening_bytes_too_short_to_be_sealed_is_invalid_tag() -> None:
    envelope = Envelope(bytes(32), "k1")
    for wrapped, ciphertext in ((b"\x01\x02k1" + bytes(3), b""), (bytes(5), bytes(3))):
        with pytest.raises(InvalidTag):
            envelope.open(Sealed(wrapped, ciphertext), b"ctx")


def test_rewrap_moves_a_wrapped_key_onto_the_current_kek_and_leaves_the_item_as_it_was() -> None:
    """Issue 24: `cardlookup-admin rewrap` re-wraps the data key only; the
    item opens under the new KEK alone once the old one is retired."""
    k1, k2 = os.urandom(32), os.urandom(32)
    env = Envelope(k1, "kek-1")
    old = env.seal(b"identity", b"user:u1")
    legacy = legacy_seal(k1, b"subject", b"subject:q1")
    env.rotate(k2, "kek-2", {"kek-1": k1})
    assert env.previous_key_ids == ["kek-1"] and env.key_prefix == bytes([1, 5]) + b"kek-2"
    moved = Sealed(env.rewrap(old.wrapped_key, b"user:u1"), old.ciphertext)
    moved_legacy = Sealed(env.rewrap(legacy.wrapped_key, b"subject:q1"), legacy.ciphertext)
    assert moved.wrapped_key.startswith(env.key_prefix) and moved_legacy.wrapped_key.startswith(env.key_prefix)
    with pytest.raises(InvalidTag):
        env.rewrap(old.wrapped_key, b"user:u2")  # the context still binds the key to its row
    env.rotate(k2, "kek-2", {})
    assert env.open(moved, b"user:u1") == b"identity"
    assert env.open(moved_legacy, b"subject:q1") == b"subject"
    with pytest.raises(KekUnknown) as unknown:
        env.rewrap(old.wrapped_key, b"user:u1")
    assert unknown.value.key_id == "kek-1" and str(unknown.value).startswith("KEK_UNKNOWN:kek-1")
