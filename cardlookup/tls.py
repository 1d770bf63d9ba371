"""gRPC mTLS credentials from PEM files, and the peer's certificate names."""

from __future__ import annotations

from pathlib import Path

import grpc


def server_credentials(cert: Path, key: Path, client_ca: Path) -> grpc.ServerCredentials:
    """Server credentials that require a client certificate from `client_ca`."""
    return grpc.ssl_server_credentials(
        [(Path(key).read_bytes(), Path(cert).read_bytes())],
        root_certificates=Path(client_ca).read_bytes(),
        require_client_auth=True,
    )


def channel_credentials(ca: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    """Client credentials: trust `ca`, present `cert`/`key`."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes(),
        certificate_chain=Path(cert).read_bytes(),
    )


def peer_names(context: grpc.aio.ServicerContext) -> set[str]:
    """The DNS SANs and common name of the client certificate of this call."""
    auth = context.auth_context()
    names = [*auth.get("x509_subject_alternative_name", []), *auth.get("x509_common_name", [])]
    return {n.decode() if isinstance(n, bytes) else str(n) for n in names}
