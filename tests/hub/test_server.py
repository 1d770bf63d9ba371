"""The hub process: mTLS, health, reflection, installers, background tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cardlookup.clock import ManualClock
from cardlookup.pki import HUB_SERVER_NAME, PkiPaths
from cardlookup.tls import channel_credentials
from hub.process.server import HubContext, HubServer
from tests.hub.helpers import hub_config

FAKE_SERVICE = "cardlookup.test.v1.Nothing"


def api_channel(pki: PkiPaths, port: int, client: str = "app-backend") -> grpc.aio.Channel:
    creds = channel_credentials(pki.ca_cert, pki.cert(client), pki.key(client))
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", HUB_SERVER_NAME)]
    )


async def test_hub_serves_health_and_reflection_over_mtls(pki: PkiPaths, clock: ManualClock, tmp_path: Path) -> None:
    ran = asyncio.Event()
    seen: list[HubContext] = []

    async def installer(ctx: HubContext) -> None:
        seen.append(ctx)
        ctx.service_names.append(FAKE_SERVICE)

        async def background() -> None:
            ran.set()
            await asyncio.Event().wait()

        ctx.background.append(background)

    config = hub_config(pki, {"102": "127.0.0.1:1"}, tmp_path)
    hub = HubServer(config, clock, installers=[installer])
    await hub.start()
    try:
        assert hub.port > 0 and seen and seen[0].engine is hub.engine
        await asyncio.wait_for(ran.wait(), 5)
        async with api_channel(pki, hub.port) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", FAKE_SERVICE):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            call = stub.ServerReflectionInfo(timeout=5)
            await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            response = await call.read()
            await call.done_writing()
            names = {s.name for s in response.list_services_response.service}
            assert {FAKE_SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    finally:
        await hub.stop(grace=0.5)


async def test_hub_refuses_a_client_without_a_certificate(pki: PkiPaths, clock: ManualClock, tmp_path: Path) -> None:
    config = hub_config(pki, {"102": "127.0.0.1:1"}, tmp_path)
    hub = HubServer(config, clock)
    await hub.start()
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes())
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{hub.port}", creds, options=[("grpc.ssl_target_name_override", HUB_SERVER_NAME)]
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await hub.stop(grace=0.5)


async def test_plaintext_health_port_serves_health_only(pki: PkiPaths, clock: ManualClock, tmp_path: Path) -> None:
    config = hub_config(pki, {"102": "127.0.0.1:1"}, tmp_path, health_listen="127.0.0.1:0")
    hub = HubServer(config, clock)
    await hub.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.health_port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=5)
                await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
                await call.read()
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await hub.stop(grace=0.5)


async def test_hub_with_the_api_installer_serves_the_lookup_service(
    pki: PkiPaths, clock: ManualClock, tmp_path: Path
) -> None:
    from hub.process.main import load_api_installer

    hub = HubServer(hub_config(pki, {"102": "127.0.0.1:1"}, tmp_path), clock, installers=[load_api_installer()])
    await hub.start()
    try:
        async with api_channel(pki, hub.port) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="cardlookup.hub.v1.CardLookupService"), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await hub.stop(grace=0.5)
