"""Server certificates that can be replaced while the server runs (issue 11
item 3).

`ReloadableServerCredentials` builds gRPC's dynamic SSL server credentials:
gRPC asks the fetcher for a certificate configuration at every new TLS
handshake; it returns None ("unchanged") until `update` stages new files,
then the new configuration once. So new connections get the new server
certificate and the new trusted client CAs, and connections already open
keep theirs until they end. Who invalidates: `HubServer.reload` (SIGHUP or
the admin Reload call) calls `update`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hub.core.config import TlsFiles


class TlsFilesError(ValueError):
    """A certificate set that must not be used; one line naming the file
    (key) and the problem, never the files' content."""


def check_tls_files(section: str, tls: TlsFiles, now: dt.datetime | None = None, chained: bool = True) -> None:
    """Checks what gRPC does not until a handshake (issue 24 item 3): each
    file parses, the key is the certificate's, the certificate is valid now,
    and, with `chained`, its chain (the certificate file may carry
    intermediates after the leaf) ends at a CA of the `ca` bundle. Raises
    TlsFilesError. (The hub's client certificate towards banks is checked
    unchained: `bank_tls.ca` is the banks' CA, which need not be its issuer.)"""
    now = now or dt.datetime.now(dt.UTC)
    certs = _pem_certificates(f"{section}.cert", Path(tls.cert))
    cas = _pem_certificates(f"{section}.ca", Path(tls.ca))
    try:
        key = serialization.load_pem_private_key(Path(tls.key).read_bytes(), password=None)
    except OSError:
        raise TlsFilesError(f"{section}.key: {tls.key} cannot be read") from None
    except (ValueError, TypeError):
        raise TlsFilesError(f"{section}.key: {tls.key} is not an unencrypted PEM private key") from None
    leaf = certs[0]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise TlsFilesError(f"{section}.key: {tls.key} is not the key of {section}.cert ({tls.cert})")
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise TlsFilesError(
            f"{section}.cert: {tls.cert} is not valid now"
            f" (valid {leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"
        )
    if not chained:
        return
    for child, parent in itertools.pairwise(certs):
        if not _issued_by(child, parent):
            raise TlsFilesError(f"{section}.cert: {tls.cert}: a certificate in it is not issued by the next one")
    if not any(_issued_by(certs[-1], ca) or certs[-1] == ca for ca in cas):
        raise TlsFilesError(f"{section}.cert: {tls.cert} is not issued by a CA in {section}.ca ({tls.ca})")


def _pem_certificates(key: str, path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError:
        raise TlsFilesError(f"{key}: {path} cannot be read") from None
    except ValueError:
        raise TlsFilesError(f"{key}: {path} is not a PEM certificate file") from None
    if not certs:
        raise TlsFilesError(f"{key}: {path} holds no certificate")
    return certs


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # ValueError, TypeError, InvalidSignature: not this issuer
        return False
    return True


def certificate_configuration(tls: TlsFiles) -> grpc.ServerCertificateConfiguration:
    """Reads the files now (a missing or unreadable file raises OSError)."""
    return grpc.ssl_server_certificate_configuration(
        [(Path(tls.key).read_bytes(), Path(tls.cert).read_bytes())], root_certificates=Path(tls.ca).read_bytes()
    )


class ReloadableServerCredentials:
    def __init__(self, tls: TlsFiles) -> None:
        self._lock = threading.Lock()  # the fetcher runs on gRPC's threads
        self._staged: grpc.ServerCertificateConfiguration | None = None
        self._tls = tls
        self.credentials = grpc.dynamic_ssl_server_credentials(
            certificate_configuration(tls),
            self._fetch,  # type: ignore[arg-type]  # None = unchanged (gRPC docs); the stubs say otherwise
            require_client_authentication=True,
        )

    @property
    def tls(self) -> TlsFiles:
        return self._tls

    def update(self, tls: TlsFiles) -> None:
        """Stages the files of `tls` for the next handshakes (read now, so a
        bad file fails the reload instead of a later handshake)."""
        staged = certificate_configuration(tls)
        with self._lock:
            self._staged = staged
            self._tls = tls

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            staged, self._staged = self._staged, None
        return staged
