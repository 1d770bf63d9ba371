"""Ask a hub's gRPC health service whether it is SERVING.

    python docs/examples/check_health.py 127.0.0.1:50051 --pki pki          # mTLS port
    python docs/examples/check_health.py 127.0.0.1:50052 --plaintext        # health_listen port

Checks "" (the whole hub) and cardlookup.hub.v1.CardLookupService; prints one
line per service and exits 0 only if all are SERVING. On the mTLS port it
presents the app backend's certificate and verifies the hub by the name
hub.cardlookup.internal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cardlookup.pki import HUB_SERVER_NAME, PkiPaths
from cardlookup.tls import channel_credentials

SERVICES = ("", "cardlookup.hub.v1.CardLookupService")


async def check(address: str, pki: Path | None, call_timeout: float) -> bool:
    if pki is None:
        channel = grpc.aio.insecure_channel(address)
    else:
        paths = PkiPaths(pki)
        creds = channel_credentials(paths.ca_cert, paths.cert("app-backend"), paths.key("app-backend"))
        channel = grpc.aio.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", HUB_SERVER_NAME)])
    healthy = True
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in SERVICES:
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=call_timeout)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            except grpc.aio.AioRpcError as error:
                status = error.code().name
            print(f"{service or '(hub)'}: {status}")
            healthy = healthy and status == "SERVING"
    return healthy


def main() -> None:
    parser = argparse.ArgumentParser(description="gRPC health check of a cardlookup hub")
    parser.add_argument("address", help="host:port")
    parser.add_argument("--pki", type=Path, default=Path("pki"), help="PKI directory (mTLS port)")
    parser.add_argument("--plaintext", action="store_true", help="the plaintext health_listen port")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(check(args.address, None if args.plaintext else args.pki, args.timeout)) else 1)


if __name__ == "__main__":
    main()
