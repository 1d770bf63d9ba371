from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cardlookup.pki import (
    APP_BACKEND_NAME,
    HUB_CLIENT_NAME,
    PkiPaths,
    bank_server_name,
    create_dev_pki,
    issue_client_certificate,
)


def _sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_every_identity_is_bound_by_its_san(pki: PkiPaths) -> None:
    assert _sans(pki.bank_cert("102")) == [bank_server_name("102")]
    assert _sans(pki.cert("hub-client")) == [HUB_CLIENT_NAME]
    assert _sans(pki.cert("app-backend")) == [APP_BACKEND_NAME]
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    bank = x509.load_pem_x509_certificate(pki.bank_cert("316").read_bytes())
    assert bank.issuer == ca.subject
    bank.verify_directly_issued_by(ca)
    usage = bank.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage and ExtendedKeyUsageOID.CLIENT_AUTH not in usage


def test_private_keys_are_owner_only(pki: PkiPaths) -> None:
    for path in (pki.ca_key, pki.key("hub-client"), pki.consent_signing_key, pki.key_encryption_key):
        assert path.stat().st_mode & 0o077 == 0, path


def test_rerun_keeps_existing_files_and_adds_banks(tmp_path: Path) -> None:
    paths = create_dev_pki(tmp_path, ["102"])
    ca_before = paths.ca_cert.read_bytes()
    kek_before = paths.key_encryption_key.read_bytes()
    create_dev_pki(tmp_path, ["102", "5000"])
    assert paths.ca_cert.read_bytes() == ca_before
    assert paths.key_encryption_key.read_bytes() == kek_before
    assert _sans(paths.bank_cert("5000")) == [bank_server_name("5000")]


def test_extra_client_certificate_chains_to_the_ca_and_names_its_holder(tmp_path: Path) -> None:
    paths = create_dev_pki(tmp_path, [])
    cert_path, key_path = issue_client_certificate(paths, "partner", "partner.example.com")
    assert (cert_path, key_path) == (paths.cert("partner"), paths.key("partner"))
    assert _sans(cert_path) == ["partner.example.com"]
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()))
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert key_path.stat().st_mode & 0o077 == 0


def test_paths_accept_a_string_root(tmp_path: Path) -> None:
    paths = PkiPaths(str(tmp_path))  # type: ignore[arg-type]
    assert paths.ca_cert == tmp_path / "ca.pem"
    assert paths.bank_cert("102") == tmp_path / "certs" / "bank-102.pem"
