"""Issue 18 item 6: the Node.js bank serves grpc.health.v1 and server
reflection on its mTLS port, like the simulated banks and as the bank guide
recommends ("Health and reflection"), with the npm packages the guide names
(grpc-health-check, @grpc/reflection)."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cardlookup.pki import PkiPaths, bank_server_name
from cardlookup.population import Population
from cardlookup.tls import channel_credentials
from tests.node_bank.harness import NodeBank, write_bank_data

CODE = "308"


def channel(pki: PkiPaths, address: str, identity: str) -> grpc.aio.Channel:
    credentials = channel_credentials(pki.ca_cert, pki.cert(identity), pki.key(identity))
    return grpc.aio.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", bank_server_name(CODE))]
    )


async def test_the_node_bank_serves_health_and_reflection(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    async with NodeBank(pki, CODE, write_bank_data(population, CODE, tmp_path / "cards.json")) as address:
        async with channel(pki, address, "hub-client") as hub:
            health = health_pb2_grpc.HealthStub(hub)
            for service in ("", "cardlookup.bank.v1.CardDirectoryService", "cardlookup.bank.v1.CardCaseService"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
            stub = reflection_pb2_grpc.ServerReflectionStub(hub)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            replies = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=10)]
        names = {s.name for s in replies[0].list_services_response.service}
        assert {
            "cardlookup.bank.v1.CardDirectoryService",
            "cardlookup.bank.v1.CardCaseService",
            "grpc.health.v1.Health",
        } <= names
        # An operator's probe with another certificate from the CA may ask too.
        async with channel(pki, address, "app-backend") as probe:
            reply = await health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
