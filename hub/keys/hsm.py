"""Keys that never leave an HSM, through PKCS#11 (issue 11 item 4).

The consent-signing key (Ed25519: CKK_EC_EDWARDS, signed with CKM_EDDSA,
the same plain Ed25519 signature the contract (cardlookup.consent, R4)
specifies, so banks verify it exactly as before) and the key-encryption key
(AES-256, CKM_AES_GCM) can be token objects found by label; the hub only
asks the token to sign, encrypt and decrypt. Keys are generated on the token
as sensitive and not extractable (`generate_consent_key`, `generate_kek`).
Files stay the development default (hub.keys.crypto.load_custody decides).

Tested against SoftHSM2 from Debian (tests/hub/test_hsm.py); python-pkcs11
is a dependency of the hub package. Calls are synchronous and short; the
hub makes them on its event loop thread only.

One session owner per process (issue 24): `shared_session(settings)` opens
the token and logs in once, and hands the same session to every later
caller (each reload re-resolves its keys by label on it). PKCS#11 logs an
application in per token, not per session, so a second login was refused
(UserAlreadyLoggedIn) and every reload with `[hsm]` failed. A session the
token no longer knows (token removed, module restarted) is re-opened on the
next use, with an error naming the PKCS#11 failure when it cannot be.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters

from hub.core.config import HsmSettings

ED25519_OID = "1.3.101.112"


_LOGINS: dict[tuple[str, str], str] = {}
"""The PIN this process logged in to each (module's real path, token label)
with. Keyed by the real path (`_token_key`): the same module under a second
name (a symlink, or the configuration file's resolved path against a test's
literal one) is one library and one login, and the second name missed the
entry, so a reload or a second opener was refused with UserAlreadyLoggedIn."""


def _token_key(settings: HsmSettings) -> tuple[str, str]:
    """(the module's real path, the token label): one library, one token, one login."""
    return os.path.realpath(str(settings.module)), settings.token_label


class HsmError(RuntimeError):
    """The token, a key label or the PIN is not usable; one line for the operator."""


@dataclass
class HsmConsentKey:
    """An Ed25519 private key on the token: `sign` as Ed25519PrivateKey does."""

    key: Any

    def sign(self, data: bytes) -> bytes:
        return bytes(self.key.sign(data, mechanism=Mechanism.EDDSA))


@dataclass
class HsmKek:
    """An AES-256 key on the token: AES-GCM as cryptography's AESGCM does."""

    key: Any

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        return bytes(
            self.key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, associated_data))
        )

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        try:
            return bytes(
                self.key.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, associated_data))
            )
        except pkcs11.PKCS11Error:
            raise InvalidTag() from None  # the token reports a failed tag as a general error


@dataclass
class HsmPepper:
    """A generic secret key on the token: HMAC-SHA256 (CKM_SHA256_HMAC) of a
    payment password, the pepper argon2id runs over (issue 17)."""

    key: Any

    def digest(self, password: str) -> str:
        return bytes(self.key.sign(b"payment_password\x00" + password.encode(), mechanism=Mechanism.SHA256_HMAC)).hex()


class HsmSession:
    """One logged-in session on the configured token."""

    def __init__(self, session: Any) -> None:
        self._session = session

    @classmethod
    def open(cls, settings: HsmSettings, rw: bool = False) -> HsmSession:
        try:
            lib = _library(settings.module)
            token = lib.get_token(token_label=settings.token_label)
            key = _token_key(settings)
            try:
                session = cls(token.open(rw=rw, user_pin=settings.pin))
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # This process is logged in to the token already (another
                # session is open): a new session shares that login, if it
                # was made with the same PIN.
                if _LOGINS.get(key) != settings.pin:
                    raise
                return cls(token.open(rw=rw))
            _LOGINS[key] = settings.pin
            return session
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as error:
            raise HsmError(
                f"hsm: cannot open token {settings.token_label!r} ({type(error).__name__}{_detail(error)})"
            ) from None

    def alive(self) -> bool:
        """Whether the token still knows this session (one object search)."""
        try:
            for _ in self._session.get_objects({Attribute.LABEL: "cardlookup-session-check"}):
                break
        except (pkcs11.PKCS11Error, RuntimeError):
            return False
        return True

    def consent_key(self, label: str) -> HsmConsentKey:
        """The signing key labelled `label`; HsmError unless it may sign."""
        key = self._find(ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS, label)
        self._require(key, label, (Attribute.SIGN,))
        return HsmConsentKey(key)

    def kek(self, label: str) -> HsmKek:
        """The AES key labelled `label`; HsmError unless it may encrypt and decrypt."""
        key = self._find(ObjectClass.SECRET_KEY, KeyType.AES, label)
        self._require(key, label, (Attribute.ENCRYPT, Attribute.DECRYPT))
        return HsmKek(key)

    @staticmethod
    def _require(key: Any, label: str, usages: tuple[Attribute, ...]) -> None:
        for usage in usages:
            try:
                allowed = bool(key[usage])
            except (pkcs11.PKCS11Error, KeyError):
                allowed = False
            if not allowed:
                raise HsmError(f"hsm: key {label!r} does not allow {usage.name} (CKA_{usage.name} is false)")

    def has_key(self, label: str) -> bool:
        """Whether an object labelled `label` is on the token."""
        return any(True for _ in self._session.get_objects({Attribute.LABEL: label}))

    def password_pepper(self, label: str) -> HsmPepper:
        return HsmPepper(self._find(ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, label))

    def generate_password_pepper(self, label: str) -> None:
        """A new 256-bit HMAC key on the token (sensitive, not extractable)."""
        self._session.generate_key(
            KeyType.GENERIC_SECRET,
            256,
            store=True,
            label=label,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True},
        )

    def consent_public_key(self, label: str) -> Ed25519PublicKey:
        """The public half, for the banks' trusted keys (the private half stays)."""
        public = self._find(ObjectClass.PUBLIC_KEY, KeyType.EC_EDWARDS, label)
        point = bytes(public[Attribute.EC_POINT])
        raw = point[2:] if len(point) == 34 and point[0] == 0x04 else point  # DER OCTET STRING or raw
        return Ed25519PublicKey.from_public_bytes(raw)

    def consent_public_pem(self, label: str) -> bytes:
        return self.consent_public_key(label).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def generate_consent_key(self, label: str) -> Ed25519PublicKey:
        """A new Ed25519 key pair on the token (private: sensitive, not extractable)."""
        params = self._session.create_domain_parameters(
            KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)}, local=True
        )
        params.generate_keypair(
            store=True,
            label=label,
            # The least the hub needs (issue 24 item 6): the private key signs, nothing else.
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
            },
            public_template={Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False},
        )
        return self.consent_public_key(label)

    def generate_kek(self, label: str) -> None:
        """A new AES-256 key on the token (sensitive, not extractable)."""
        self._session.generate_key(
            KeyType.AES,
            256,
            store=True,
            label=label,
            # The least the hub needs (issue 24 item 6): encrypt and decrypt (AES-GCM), nothing else.
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
                Attribute.DERIVE: False,
            },
        )

    def close(self) -> None:
        self._session.close()

    def _find(self, object_class: ObjectClass, key_type: KeyType, label: str) -> Any:
        try:
            return self._session.get_key(object_class, key_type, label=label)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
            raise HsmError(f"hsm: no single {key_type.name} key labelled {label!r} on the token") from None


_SHARED: dict[tuple[str, str], HsmSession] = {}
_LIBRARIES: dict[str, Any] = {}


def _library(module: object) -> Any:
    """The loaded PKCS#11 module, once per process, by its real path: the
    same module loaded under a second name (a symlink; the configuration
    file resolves paths) fails in C_Initialize ("already initialized")."""
    path = os.path.realpath(str(module))
    lib = _LIBRARIES.get(path)
    if lib is None:
        lib = _LIBRARIES[path] = pkcs11.lib(path)
    return lib


def shared_session(settings: HsmSettings) -> HsmSession:
    """This process's one session on the token `settings` names: opened and
    logged in on first use, then reused (start, every reload); re-opened if
    the token no longer knows it. HsmError, naming the PKCS#11 failure, when
    the token cannot be opened."""
    key = _token_key(settings)
    session = _SHARED.get(key)
    if session is not None and session.alive():
        return session
    if session is not None:
        del _SHARED[key]
        with contextlib.suppress(pkcs11.PKCS11Error, RuntimeError):
            session.close()
    session = HsmSession.open(settings)
    _SHARED[key] = session
    return session


def close_shared_sessions() -> None:
    """Closes every shared session (process exit, tests)."""
    for session in _SHARED.values():
        with contextlib.suppress(pkcs11.PKCS11Error, RuntimeError):
            session.close()
    _SHARED.clear()


def _detail(error: BaseException) -> str:
    """The PKCS#11 return value's name for a generic PKCS11Error (never a PIN
    or key material: python-pkcs11 puts only the CKR code in its message)."""
    text = str(error).strip()
    return f": {text[:80]}" if type(error) is pkcs11.PKCS11Error and text else ""
