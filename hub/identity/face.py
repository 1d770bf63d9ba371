"""Face-verification attestations (R4): a configured provider signs
FaceAttestationClaims with Ed25519; the hub checks the signature over the
bytes as received, then that the claims name this user and verification,
say "matched", and are fresh."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from hub.identity.errors import RuleViolation

CLOCK_SKEW = dt.timedelta(minutes=2)
"""How far in the future a provider's verify_time may be (clock drift)."""


@dataclass(frozen=True)
class Attestation:
    claims: bytes
    signature: bytes
    key_id: str


def _refuse(problem: str) -> RuleViolation:
    return RuleViolation("FACE_ATTESTATION_INVALID", f"the face attestation is {problem}", {"problem": problem})


class FaceVerifier:
    def __init__(self, provider_keys: Mapping[str, Ed25519PublicKey], max_age: dt.timedelta) -> None:
        self._keys = dict(provider_keys)
        self._max_age = max_age

    def replace_keys(self, provider_keys: Mapping[str, Ed25519PublicKey]) -> None:
        """Rotated face-provider keys (HubServer.reload): trust exactly these."""
        self._keys = dict(provider_keys)

    def verify(self, att: Attestation | None, *, user_id: str, verification_id: str, now: dt.datetime) -> None:
        if att is None or not att.claims or not att.signature:
            raise _refuse("missing")
        key = self._keys.get(att.key_id)
        if key is None:
            raise _refuse("from an unknown provider key")
        try:
            key.verify(att.signature, att.claims)
        except InvalidSignature:
            raise _refuse("badly signed") from None
        claims = face_pb.FaceAttestationClaims()
        try:
            claims.ParseFromString(att.claims)
        except DecodeError:
            raise _refuse("malformed") from None
        if claims.user_id != user_id or claims.verification_id != verification_id:
            raise _refuse("for another user or verification")
        if not claims.matched:
            raise _refuse("not a match")
        if not claims.HasField("verify_time"):
            raise _refuse("malformed")
        verify_time = claims.verify_time.ToDatetime(tzinfo=dt.UTC)
        if verify_time > now + CLOCK_SKEW or now - verify_time > self._max_age:
            raise _refuse("stale")
