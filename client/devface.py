"""The development face-verification provider: signs FaceAttestationClaims
with the PKI's face-provider key (key id FACE_KEY_ID), as a real provider
would after a live face match. For the demo, the CLI and tests only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.pki import FACE_KEY_ID, load_ed25519_private


class DevFaceProvider:
    def __init__(self, key: Ed25519PrivateKey, key_id: str = FACE_KEY_ID) -> None:
        self._key = key
        self.key_id = key_id

    @classmethod
    def from_file(cls, path: Path, key_id: str = FACE_KEY_ID) -> DevFaceProvider:
        return cls(load_ed25519_private(path), key_id)

    def attest(
        self, user_id: str, verification_id: str, verify_time: dt.datetime, matched: bool = True
    ) -> face_pb.FaceAttestation:
        claims = face_pb.FaceAttestationClaims(user_id=user_id, verification_id=verification_id, matched=matched)
        claims.verify_time.FromDatetime(verify_time.astimezone(dt.UTC))
        payload = claims.SerializeToString(deterministic=True)
        return face_pb.FaceAttestation(claims=payload, signature=self._key.sign(payload), key_id=self.key_id)
