"""The credentials a conformance run presents: TLS client identities and
consent-signing keys (files). Its own module so that the target description
(target.py) and the impostor certificates (impostor.py) share it without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientIdentity:
    """A TLS client certificate and its private key (PEM files)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key (PEM, PKCS#8) and the key id it is known by."""

    path: Path
    key_id: str
