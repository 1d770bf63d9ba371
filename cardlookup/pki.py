"""The development PKI: one CA, TLS certificates for the hub, the app
backend and every bank, and the Ed25519 / symmetric keys the hub needs.

Production operators bring their own certificates and keys; the file layout
below is what the hub, bank_sim and client configurations point at.

    cardlookup-pki --out pki/ [--banks 16]

Identity is bound by DNS SubjectAltName: a bank's server certificate names
`<code>.bank.cardlookup.internal` and the hub dials every bank with that name
as the TLS target (so one bank cannot answer for another); the hub's client
certificate names HUB_CLIENT_NAME and the app backend's APP_BACKEND_NAME.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.private_files import write_private, write_public

HUB_SERVER_NAME = "hub.cardlookup.internal"
HUB_CLIENT_NAME = "hub-client.cardlookup.internal"
APP_BACKEND_NAME = "app-backend.cardlookup.internal"
OPERATOR_NAME = "operator.cardlookup.internal"
"""The DNS SAN of the operator's client certificate (the hub's admin service)."""
CONSENT_KEY_ID = "hub-consent-dev-1"
FACE_KEY_ID = "face-provider-dev-1"
KEK_ID = "kek-dev-1"
"""The id of the development key-encryption key (hub.keys.crypto records it in sealed data)."""


def bank_server_name(bank_code: str) -> str:
    """The DNS name a bank's server certificate carries, and the hub dials."""
    return f"{bank_code}.bank.cardlookup.internal"


@dataclass(frozen=True)
class PkiPaths:
    """Where each file of a PKI directory lives."""

    root: Path

    def __post_init__(self) -> None:
        # Accept a str too (PkiPaths("pki")): every path below is built from it.
        object.__setattr__(self, "root", Path(self.root))

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def cert(self, name: str) -> Path:
        """name: "hub-server", "hub-client", "app-backend", "operator" or "bank-<code>"."""
        return self.root / "certs" / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.root / "certs" / f"{name}.key"

    def bank_cert(self, code: str) -> Path:
        return self.cert(f"bank-{code}")

    def bank_key(self, code: str) -> Path:
        return self.key(f"bank-{code}")

    @property
    def consent_signing_key(self) -> Path:
        return self.root / "keys" / "consent-signing.key"

    @property
    def consent_public_key(self) -> Path:
        return self.root / "keys" / "consent-signing.pub"

    @property
    def face_provider_key(self) -> Path:
        return self.root / "keys" / "face-provider.key"

    @property
    def face_provider_public_key(self) -> Path:
        return self.root / "keys" / "face-provider.pub"

    @property
    def key_encryption_key(self) -> Path:
        """32 random bytes, hex: wraps each report's data key (AES-GCM)."""
        return self.root / "keys" / "kek.hex"

    @property
    def index_key(self) -> Path:
        """32 random bytes, hex: keys the HMAC that indexes ID numbers."""
        return self.root / "keys" / "index.hex"


def _write(path: Path, data: bytes, private: bool = False) -> None:
    if private:  # 0600 from the first byte (cardlookup.private_files)
        write_private(path, data)
        return
    write_public(path, data)  # 0644 whatever the umask, in 0700 directories


def _pem_key(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    common_name: str,
    dns_names: list[str],
    ips: list[str],
    usage: list[x509.ObjectIdentifier],
    now: dt.datetime,
    days: int,
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _load_or_create_ca(paths: PkiPaths, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    if paths.ca_cert.exists() and paths.ca_key.exists():
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()).subject
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cardlookup dev CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(paths.ca_key, _pem_key(key), private=True)
    _write(paths.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
    return key, name


def create_dev_pki(
    root: Path, bank_codes: tuple[str, ...] | list[str] = DEFAULT_BANK_CODES, days: int = 365
) -> PkiPaths:
    """Creates (or completes) a development PKI under `root`.

    Idempotent: files that exist are kept, so adding banks to an existing
    directory issues only the new banks' certificates.
    """
    paths = PkiPaths(Path(root))
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_name = _load_or_create_ca(paths, now)
    server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    wanted: list[tuple[str, str, list[str], list[str], list[x509.ObjectIdentifier]]] = [
        ("hub-server", HUB_SERVER_NAME, [HUB_SERVER_NAME, "localhost"], ["127.0.0.1", "::1"], [server]),
        ("hub-client", HUB_CLIENT_NAME, [HUB_CLIENT_NAME], [], [client]),
        ("app-backend", APP_BACKEND_NAME, [APP_BACKEND_NAME], [], [client]),
        # The operator's client certificate (cardlookup-admin). Its CN says
        # "operator" too, but the hub decides by the DNS SAN only.
        ("operator", OPERATOR_NAME, [OPERATOR_NAME], [], [client]),
    ]
    wanted += [(f"bank-{c}", bank_server_name(c), [bank_server_name(c)], [], [server]) for c in bank_codes]
    for name, cn, dns, ips, usage in wanted:
        if paths.cert(name).exists() and paths.key(name).exists():
            continue
        cert_pem, key_pem = _issue(ca_key, ca_name, cn, dns, ips, usage, now, days)
        _write(paths.key(name), key_pem, private=True)
        _write(paths.cert(name), cert_pem)
    for private, public in (
        (paths.consent_signing_key, paths.consent_public_key),
        (paths.face_provider_key, paths.face_provider_public_key),
    ):
        if not private.exists():
            ed = Ed25519PrivateKey.generate()
            _write(private, _pem_key(ed), private=True)
            pub = ed.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            _write(public, pub)
    for secret in (paths.key_encryption_key, paths.index_key):
        if not secret.exists():
            _write(secret, secrets.token_hex(32).encode(), private=True)
    return paths


def issue_client_certificate(paths: PkiPaths, name: str, dns_name: str, days: int = 30) -> tuple[Path, Path]:
    """Issues one more client certificate from the PKI's CA, naming
    `dns_name`, written as certs/<name>.pem and .key; returns both paths.

    For a second app-backend instance, or to check who may call: the CA
    vouches for the name, and each server still decides which names it
    accepts (the hub: `allowed_clients`; a bank: only the hub's name).
    """
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_name = _load_or_create_ca(paths, now)
    cert_pem, key_pem = _issue(ca_key, ca_name, dns_name, [dns_name], [], [ExtendedKeyUsageOID.CLIENT_AUTH], now, days)
    _write(paths.key(name), key_pem, private=True)
    _write(paths.cert(name), cert_pem)
    return paths.cert(name), paths.key(name)


def load_ed25519_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_ed25519_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def load_secret(path: Path) -> bytes:
    """A 32-byte secret stored as hex (KEK, index key)."""
    raw = bytes.fromhex(Path(path).read_text().strip())
    if len(raw) != 32:
        raise ValueError(f"{path} must hold 32 bytes as hex")
    return raw


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create the development PKI for the card-lookup hub and banks.")
    parser.add_argument("--out", type=Path, default=Path("pki"), help="directory to create (default: pki)")
    parser.add_argument("--banks", type=int, default=16, help="how many banks (default 16; more are synthetic)")
    args = parser.parse_args(argv)
    from cardlookup.banks import bank_fleet

    paths = create_dev_pki(args.out, [b.code for b in bank_fleet(args.banks)])
    print(f"development PKI ready in {paths.root}")


if __name__ == "__main__":
    main()
