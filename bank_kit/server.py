"""Runs the kit's bank: a synchronous grpcio server over mutual TLS.

    python -m bank_kit.server --listen 0.0.0.0:7443 --bank-code 102 \\
        --cert bank-102.pem --key bank-102.key --ca ca.pem \\
        --consent-key hub-consent-1=hub-consent-1.pub \\
        --records records.json --card-ref-secret card-ref.secret

Prints "READY <port>" once serving; stops on SIGTERM/SIGINT (calls in flight
get 5 s). Beside ListCards it serves grpc.health.v1 and server reflection.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bank_kit.bank import Bank, Records, Refusal, abort
from cardlookup.bank.v1 import card_directory_pb2_grpc as pb_grpc

HUB_NAME = "hub-client.cardlookup.internal"
SERVICE = "cardlookup.bank.v1.CardDirectoryService"
LIST_CARDS = f"/{SERVICE}/ListCards"

# docs/bank-integration.md, "Performance expectations": the hub pings every
# 60 s while calls are in flight; gRPC core's server default refuses pings
# more often than every 5 minutes when no data flows (then GOAWAY after
# grpc.http2.max_ping_strikes), so allow them every 30 s.
SERVER_OPTIONS = [
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 30_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_receive_message_length", 64 * 1024),
]


def caller_names(context: grpc.ServicerContext) -> set[str]:
    """The client certificate's DNS SubjectAltNames: the caller's identity.
    Never its common name."""
    names: bytes | Iterable[bytes] = context.auth_context().get("x509_subject_alternative_name", [])
    return {n.decode() for n in ([names] if isinstance(names, bytes) else names)}


class HubOnly(grpc.ServerInterceptor):
    """Serves ListCards to the hub only (PERMISSION_DENIED, CALLER_NOT_HUB):
    wraps the handler, whose context carries the TLS auth context. Health and
    reflection stay open to any client certificate from the CA."""

    def __init__(self, hub_name: str = HUB_NAME) -> None:
        self._hub_name = hub_name

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method != LIST_CARDS:
            return handler
        behaviour = handler.unary_stream

        def guarded(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if self._hub_name not in caller_names(context):
                abort(context, Refusal(grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB", "only the hub may call"))
            yield from behaviour(request, context)

        return grpc.unary_stream_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def build_server(bank: Bank, max_concurrent: int = 100, workers: int = 16) -> grpc.Server:
    """maximum_concurrent_rpcs: calls beyond it get RESOURCE_EXHAUSTED at
    once instead of queueing (the hub then backs off for this bank)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        interceptors=[HubOnly()],
        options=SERVER_OPTIONS,
        maximum_concurrent_rpcs=max_concurrent,
    )
    pb_grpc.add_CardDirectoryServiceServicer_to_server(bank, server)
    checker = health.HealthServicer()
    for name in ("", SERVICE):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return server


def _public_key(pem: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise SystemExit(f"{pem} is not an Ed25519 public key")
    return key


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bank_kit.server", description="The starter-kit bank (cardlookup.bank.v1).")
    p.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: a free port)")
    p.add_argument("--bank-code", required=True)
    p.add_argument("--cert", type=Path, required=True, help="server certificate <code>.bank.cardlookup.internal")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--ca", type=Path, required=True, help="the operator's CA (client certificates)")
    p.add_argument("--consent-key", action="append", required=True, help="KEY_ID=PEM (repeatable)")
    p.add_argument("--records", type=Path, required=True, help="records JSON (example_records.json)")
    p.add_argument("--card-ref-secret", type=Path, required=True, help="file with the card_ref MAC secret")
    p.add_argument("--max-concurrent", type=int, default=100, help="calls in flight before RESOURCE_EXHAUSTED")
    args = p.parse_args(argv)
    keys = {}
    for entry in args.consent_key:
        key_id, _, pem = entry.partition("=")
        if not key_id or not pem:
            p.error(f"--consent-key wants KEY_ID=PEM, got {entry}")
        keys[key_id] = _public_key(Path(pem))
    bank = Bank(args.bank_code, Records.from_json(args.records), keys, args.card_ref_secret.read_bytes().strip())
    server = build_server(bank, args.max_concurrent)
    credentials = grpc.ssl_server_credentials(
        [(args.key.read_bytes(), args.cert.read_bytes())],
        root_certificates=args.ca.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port(args.listen, credentials)
    server.start()
    print(f"READY {port}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop(5).wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
