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

import threading
from pathlib import Path

import grpc

from hub.config import TlsFiles


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
