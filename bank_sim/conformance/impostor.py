"""Client certificates that must not pass as the hub: one that names the hub
but comes from a CA no bank trusts (what an attacker who copied the hub's
name, not its key, holds), and one from the operator's CA whose common name
is the hub's name but whose DNS SubjectAltName is not (identity comes from
the SAN only)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bank_sim.conformance.credentials import ClientIdentity
from cardlookup.pki import HUB_CLIENT_NAME, PkiPaths, create_dev_pki

CN_IMPOSTOR = "cn-impostor"
"""certs/<this>.pem|.key in a development PKI."""
CN_IMPOSTOR_SAN = "not-the-hub.cardlookup.internal"


def write_impostor_identity(directory: Path) -> ClientIdentity:
    """Makes a throwaway PKI in `directory` (its own CA, no banks) and returns
    its hub-client identity: the hub's SAN, signed by a foreign CA."""
    foreign = create_dev_pki(directory / "foreign-pki", bank_codes=())
    return ClientIdentity(cert=foreign.cert("hub-client"), key=foreign.key("hub-client"))


def cn_impostor_identity(pki: PkiPaths) -> ClientIdentity:
    """A client certificate from the development PKI's CA with common name
    HUB_CLIENT_NAME and DNS SAN CN_IMPOSTOR_SAN, issued once into the PKI
    directory (needs its CA key: a bank's own run gets such a certificate
    from its operator, --cn-impostor-cert)."""
    cert_path, key_path = pki.cert(CN_IMPOSTOR), pki.key(CN_IMPOSTOR)
    if cert_path.exists() and key_path.exists():
        return ClientIdentity(cert_path, key_path)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki.ca_key} is not the EC key of a development CA")
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HUB_CLIENT_NAME)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CN_IMPOSTOR_SAN)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_path.with_suffix(".key.tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(key_pem)
    tmp.replace(key_path)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ClientIdentity(cert_path, key_path)
