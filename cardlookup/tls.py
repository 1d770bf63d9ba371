"""gRPC mTLS credentials from PEM files, and the peer's certificate names."""

from __future__ import annotations

from collections.abc import Iterable
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
    """The DNS SubjectAltNames of the client certificate of this call: the
    caller's identity. Never the common name, which a CA may put anything in
    (a certificate with CN = the hub's name and another SAN is not the hub),
    and never a SAN of another type: gRPC's `x509_subject_alternative_name`
    mixes DNS, URI, email and IP SANs, so a certificate naming the hub only as
    a URI would pass; `peer_dns` holds the DNS SANs alone (issue 17)."""
    return _decoded(context.auth_context().get("peer_dns", []))


def peer_common_names(context: grpc.aio.ServicerContext) -> set[str]:
    """The subject common name(s) of the client certificate: for display and
    for tests of what must NOT be trusted, never for a caller check."""
    return _decoded(context.auth_context().get("x509_common_name", []))


def _decoded(values: Iterable[bytes | str]) -> set[str]:
    return {n.decode() if isinstance(n, bytes) else str(n) for n in values}
