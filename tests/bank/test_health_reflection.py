"""A simulated bank serves grpc.health.v1 and server reflection over its
mTLS port, as the bank guide recommends a real bank's server to."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bank_sim.fleet import BankFleet
from cardlookup.pki import PkiPaths, bank_server_name
from cardlookup.tls import channel_credentials

CODE = "102"


def _channel(pki: PkiPaths, fleet: BankFleet, identity: str = "hub-client") -> grpc.aio.Channel:
    credentials = channel_credentials(pki.ca_cert, pki.cert(identity), pki.key(identity))
    return grpc.aio.secure_channel(
        fleet.address(CODE), credentials, options=[("grpc.ssl_target_name_override", bank_server_name(CODE))]
    )


async def test_a_health_check_of_a_simulated_bank(pki: PkiPaths, fleet: BankFleet) -> None:
    async with _channel(pki, fleet) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "cardlookup.bank.v1.CardDirectoryService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # An operator's probe with another certificate from the CA may ask too.
    async with _channel(pki, fleet, "app-backend") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_reflection_listing_of_a_simulated_bank(pki: PkiPaths, fleet: BankFleet) -> None:
    async with _channel(pki, fleet) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        replies = [reply async for reply in call]
    names = {s.name for s in replies[0].list_services_response.service}
    assert names == {
        "cardlookup.bank.v1.CardDirectoryService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
