"""Issue 17 items 5 and 6: SAN checks read DNS names only; files and
directories private (or public read-only) from the first byte whatever the
umask."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardlookup.pki import HUB_CLIENT_NAME, HUB_SERVER_NAME, PkiPaths, _load_or_create_ca, create_dev_pki
from cardlookup.private_files import write_private
from cardlookup.tls import channel_credentials, peer_names, server_credentials
from client import device_key

SAN_KINDS = {
    "uri": lambda name: x509.UniformResourceIdentifier(name),
    "email": lambda name: x509.RFC822Name(name),
    "dns": lambda name: x509.DNSName(name),
}


def _client_cert(pki: PkiPaths, label: str, san: x509.GeneralName) -> str:
    """A CA-issued client certificate whose only SAN is `san` (CN: a
    bystander), written as certs/<label>.pem/.key."""
    if not pki.cert(label).exists():
        now = dt.datetime.now(dt.UTC)
        ca_key, ca_name = _load_or_create_ca(pki, now)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bystander")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(pki.key(label), pem)
        pki.cert(label).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return label


@pytest.mark.parametrize("kind", ["uri", "email", "ip", "dns"])
async def test_peer_names_are_the_dns_sans_only(pki: PkiPaths, kind: str) -> None:
    """cardlookup.tls.peer_names, which banks (bank_sim, bank_kit) and the
    simulators' admin use to recognise the hub: a URI, email or IP SAN is
    not a name."""
    if kind == "ip":
        ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        label, expected_name = _client_cert(pki, "hub-as-ip", ip), "127.0.0.1"
    else:
        label, expected_name = _client_cert(pki, f"hub-as-{kind}", SAN_KINDS[kind](HUB_CLIENT_NAME)), HUB_CLIENT_NAME
    seen: list[set[str]] = []

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(peer_names(context))
        return b""

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "t.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo, lambda b: b, lambda b: b)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(pki.cert("hub-server"), pki.key("hub-server"), pki.ca_cert)
    )
    await server.start()
    try:
        creds = channel_credentials(pki.ca_cert, pki.cert(label), pki.key(label))
        options = [("grpc.ssl_target_name_override", HUB_SERVER_NAME)]
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel:
            await channel.unary_unary("/t.Echo/Call", lambda b: b, lambda b: b)(b"", timeout=10)
    finally:
        await server.stop(0)
    assert seen == [{expected_name}] if kind == "dns" else seen == [set()]


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_pki_is_private_and_read_only_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    paths = create_dev_pki(tmp_path / "deep" / "pki", ["102"])
    directories = [p for p in (tmp_path / "deep").rglob("*") if p.is_dir()] + [tmp_path / "deep"]
    assert {p.name for p in directories} >= {"deep", "pki", "keys", "certs"}
    for directory in directories:
        assert _mode(directory) == 0o700, directory
    for path in (paths.ca_cert, paths.cert("hub-server"), paths.bank_cert("102"), paths.consent_public_key):
        assert _mode(path) == 0o644, path
    for path in (paths.ca_key, paths.key("hub-server"), paths.key_encryption_key, paths.index_key):
        assert _mode(path) == 0o600, path


def test_a_public_file_is_0644_under_a_strict_umask_too(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        paths = create_dev_pki(tmp_path / "pki", ["102"])
    finally:
        os.umask(old)
    assert _mode(paths.ca_cert) == 0o644


async def test_the_hub_data_directory_and_the_device_key_file_are_private_under_umask_000(
    tmp_path: Path, umask_000: None
) -> None:
    from hub.store.db import open_database

    db = await open_database(tmp_path / "var" / "data" / "hub.db")
    await db.close()
    assert _mode(tmp_path / "var") == 0o700 and _mode(tmp_path / "var" / "data") == 0o700
    key_file = tmp_path / "device" / "report-key.hex"
    device_key.save(device_key.generate(), key_file)
    assert _mode(key_file.parent) == 0o700 and _mode(key_file) == 0o600
