"""Runs the kit's bank: a synchronous grpcio server over mutual TLS.

    python -m bank_kit.server --listen 0.0.0.0:7443 --bank-code 102 \\
        --cert bank-102.pem --key bank-102.key --ca ca.pem \\
        --consent-key hub-consent-1=hub-consent-1.pub \\
        --source sqlite:records.sqlite --card-ref-secret card-ref.secret \\
        --audit-log consent-audit.jsonl --cases cases.jsonl

Prints "READY <port>" once serving. SIGHUP re-reads the certificate, key and
CA files (new connections use them; a bad file keeps the old ones). SIGTERM
or SIGINT drains: health turns NOT_SERVING at once (load balancers and the
hub's health-checked channels move away) while calls are still served for
--drain-seconds, then calls in flight get 5 s; a second signal ends the
drain early (also one that came before the drain began: `StopSignals`
counts each). Beside the bank services it serves grpc.health.v1 and server
reflection, open to any client certificate from the CA; every bank service
is kept to the hub.
"""

from __future__ import annotations

import argparse
import datetime as dt
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bank_kit.audit import AuditLog
from bank_kit.bank import Bank, Desk
from bank_kit.cases import CaseBook, CaseDesk
from bank_kit.consent import ConsentVerifier, Refusal, abort
from bank_kit.contract import card_directory_pb2_grpc as pb_grpc
from bank_kit.contract import card_session_pb2_grpc as session_grpc
from bank_kit.records import DataSource
from bank_kit.session import Session
from bank_kit.sources import discover

HUB_NAME = "hub-client.cardlookup.internal"
PACKAGE = "cardlookup.bank.v1"

# docs/bank-integration.md, "Performance expectations": the hub pings every
# 60 s while calls are in flight; gRPC core's server default refuses pings
# more often than every 5 minutes when no data flows (then GOAWAY after
# grpc.http2.max_ping_strikes), so allow them every 30 s.
SERVER_OPTIONS = [
    ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
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
    """The one caller check: every method of every bank service
    (`cardlookup.bank.v1.*`, whatever its streaming kind) is served to the
    hub only, PERMISSION_DENIED / CALLER_NOT_HUB to anyone else, before the
    request is read. Health and reflection stay open to any client
    certificate from the CA (the TLS handshake already required one)."""

    def __init__(self, hub_name: str = HUB_NAME) -> None:
        self._hub_name = hub_name

    def guards(self, method: str) -> bool:
        return method.startswith(f"/{PACKAGE}.")

    def _check(self, context: grpc.ServicerContext) -> None:
        if self._hub_name not in caller_names(context):
            abort(context, Refusal(grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB", "only the hub may call"))

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not self.guards(handler_call_details.method):
            return handler
        check = self._check
        codecs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            unary_unary = handler.unary_unary

            def guarded_unary(request: Any, context: grpc.ServicerContext) -> Any:
                check(context)
                return unary_unary(request, context)

            return grpc.unary_unary_rpc_method_handler(guarded_unary, **codecs)
        if handler.unary_stream is not None:
            unary_stream = handler.unary_stream

            def guarded_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                check(context)
                yield from unary_stream(request, context)

            return grpc.unary_stream_rpc_method_handler(guarded_stream, **codecs)
        if handler.stream_unary is not None:
            stream_unary = handler.stream_unary

            def guarded_client_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                check(context)
                return stream_unary(requests, context)

            return grpc.stream_unary_rpc_method_handler(guarded_client_stream, **codecs)
        stream_stream = handler.stream_stream

        def guarded_bidi(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            check(context)
            yield from stream_stream(requests, context)

        return grpc.stream_stream_rpc_method_handler(guarded_bidi, **codecs)


@dataclass
class Running:
    server: grpc.Server
    health: health.HealthServicer
    executor: futures.ThreadPoolExecutor


def build_server(
    desk: Desk,
    cases: CaseBook | None,
    max_concurrent: int = 100,
    interceptors: tuple[grpc.ServerInterceptor, ...] | None = None,
    session: bool = True,
) -> Running:
    """One worker thread per call allowed in flight, and no more calls than
    that (maximum_concurrent_rpcs): a call beyond it gets RESOURCE_EXHAUSTED
    at once instead of queueing, and the hub backs off for this bank; the
    session stream's exchanges have as many threads and slots of their own.
    `cases` None: CardCaseService is not offered (UNIMPLEMENTED); `session`
    False: nor is CardSessionService."""
    executor = futures.ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="bank-call")
    server = grpc.server(
        executor,
        interceptors=[HubOnly()] if interceptors is None else list(interceptors),
        options=SERVER_OPTIONS,
        maximum_concurrent_rpcs=max_concurrent,
    )
    served = [pb_grpc.CardDirectoryService.__name__]
    pb_grpc.add_CardDirectoryServiceServicer_to_server(Bank(desk), server)
    if cases is not None:
        pb_grpc.add_CardCaseServiceServicer_to_server(CaseDesk(desk, cases), server)
        served.append(pb_grpc.CardCaseService.__name__)
    if session:
        session_grpc.add_CardSessionServiceServicer_to_server(Session(desk, max_concurrent), server)
        served.append(session_grpc.CardSessionService.__name__)
    names = [f"{PACKAGE}.{s}" for s in served]
    checker = health.HealthServicer()
    for name in ("", *names):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return Running(server, checker, executor)


class Certificates:
    """The server's TLS files, re-read when `reload()` was asked (SIGHUP);
    grpcio asks `fetch` before each new handshake."""

    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        self._files = (cert, key, ca)
        self._wanted = threading.Event()
        self.initial = self._read()

    def _read(self) -> grpc.ServerCertificateConfiguration:
        cert, key, ca = (p.read_bytes() for p in self._files)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def reload(self) -> None:
        self._wanted.set()

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        if not self._wanted.is_set():
            return None
        self._wanted.clear()
        try:
            config = self._read()
        except OSError as error:
            print(f"certificate reload failed, keeping the old files: {error.strerror}", file=sys.stderr, flush=True)
            return None
        print("certificates reloaded", file=sys.stderr, flush=True)
        return config

    def credentials(self) -> grpc.ServerCredentials:
        # grpcio takes None from the fetcher as "no change" (its stubs do not say so).
        fetch: Callable[[], Any] = self.fetch
        return grpc.dynamic_ssl_server_credentials(self.initial, fetch, require_client_authentication=True)


class StopSignals:
    """SIGTERM and SIGINT, each counted once however close together they come:
    the first starts the drain, the next ends it. A Python signal handler
    runs late (between two steps of the main thread) and two of them can
    run as one, so nothing is counted there: Python's own C handler writes
    one byte per signal to a wakeup socket (`signal.set_wakeup_fd`), and
    `wait` reads them one at a time. No lock is taken in a handler either
    (a handler that sets a threading.Event can deadlock the main thread
    waiting on it). Made, used and closed in the main thread."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        # The wakeup byte is written only for a signal with a Python handler.
        self._old = {signum: signal.signal(signum, lambda *_: None) for signum in self.SIGNALS}

    def wait(self, timeout: float | None = None) -> bool:
        """True once the next stop signal has come (at once if it came
        already), False if none came within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._reader], [], [], left)[0]:
                return False
            if self._reader.recv(1)[0] in self.SIGNALS:  # SIGHUP's byte comes here too: skipped
                return True

    def close(self) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._reader.close()
        self._writer.close()


def _public_key(pem: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise SystemExit(f"{pem} is not an Ed25519 public key")
    return key


def open_source(spec: str, example_records: Path | None) -> DataSource:
    """The data source `NAME:LOCATION` of bank_kit/sources/; with example
    records, LOCATION is a folder the source fills with their customers."""
    sources = discover()
    name, _, location = spec.partition(":")
    if name not in sources:
        raise SystemExit(f"--source: no data source named {name!r} (known: {', '.join(sorted(sources))})")
    if example_records is not None:
        if not location:
            raise SystemExit("--source with --example-records wants NAME:FOLDER (a folder the source may fill)")
        workdir = Path(location)
        workdir.mkdir(parents=True, exist_ok=True)
        return sources[name].example(example_records, workdir)
    if not location:
        raise SystemExit("--source wants NAME:LOCATION")
    return sources[name].open(location)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bank_kit.server", description="The starter-kit bank (cardlookup.bank.v1).")
    p.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: a free port)")
    p.add_argument("--bank-code", required=True)
    p.add_argument("--cert", type=Path, required=True, help="server certificate <code>.bank.cardlookup.internal")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--ca", type=Path, required=True, help="the operator's CA (client certificates)")
    p.add_argument("--consent-key", action="append", required=True, help="KEY_ID=PEM (repeatable)")
    p.add_argument("--source", help="NAME:LOCATION of a data source in bank_kit/sources/, e.g. sqlite:records.sqlite")
    p.add_argument("--records", type=Path, help="shorthand for --source json:RECORDS (example_records.json)")
    p.add_argument(
        "--example-records",
        type=Path,
        help="test environments: fill --source NAME:FOLDER with this JSON's customers (the conformance run's)",
    )
    p.add_argument("--card-ref-secret", type=Path, required=True, help="file with the card_ref MAC secret")
    p.add_argument(
        "--max-concurrent", type=int, default=100, help="calls in flight (and threads) before RESOURCE_EXHAUSTED"
    )
    p.add_argument("--audit-log", type=Path, help="append a JSON line per accepted or refused consent here")
    p.add_argument("--cases", type=Path, help="JSON-lines file of the card cases opened (default: memory only)")
    p.add_argument("--no-cases", action="store_true", help="do not offer the optional CardCaseService")
    p.add_argument("--no-session", action="store_true", help="do not offer the optional CardSessionService")
    p.add_argument("--drain-seconds", type=float, default=10.0, help="NOT_SERVING but still serving, before stopping")
    args = p.parse_args(argv)
    keys = {}
    for entry in args.consent_key:
        key_id, _, pem = entry.partition("=")
        if not key_id or not pem:
            p.error(f"--consent-key wants KEY_ID=PEM, got {entry}")
        keys[key_id] = _public_key(Path(pem))
    if (args.source is None) == (args.records is None):
        p.error("give one of --source and --records")
    records = open_source(args.source or f"json:{args.records}", args.example_records)
    audit = AuditLog(args.audit_log)
    desk = Desk(ConsentVerifier(args.bank_code, keys), records, args.card_ref_secret.read_bytes().strip(), audit=audit)
    cases = None if args.no_cases else CaseBook(args.bank_code, args.cases)
    running = build_server(desk, cases, args.max_concurrent, session=not args.no_session)
    certificates = Certificates(args.cert, args.key, args.ca)
    port = running.server.add_secure_port(args.listen, certificates.credentials())
    signal.signal(signal.SIGHUP, lambda *_: certificates.reload())
    stops = StopSignals()
    running.server.start()
    print(f"READY {port}", flush=True)
    stops.wait()
    running.health.enter_graceful_shutdown()
    print(f"draining: NOT_SERVING, stopping in {args.drain_seconds:g} s", file=sys.stderr, flush=True)
    stops.wait(args.drain_seconds)
    running.server.stop(5).wait()
    audit.close()
    print(f"stopped at {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}", file=sys.stderr, flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
