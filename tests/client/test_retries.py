"""The client's retry policy (client/options.py) as it really applies on the
wire: safe calls are re-sent on UNAVAILABLE and ride out a hub restart;
StartVerification and GetReport are sent once and fail at once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

import hub.api
from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from cardlookup.rpc_errors import HUB_DOMAIN, abort
from cardlookup.tls import server_credentials
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.errors import HubUnavailable
from client.options import RETRIED_METHODS, ClientOptions, RetryPolicy
from client.sync import CardLookupClient
from hub.core.config import HubConfig
from hub.process.server import HubServer
from tests.api.conftest import FAST, client_options
from tests.api.helpers import HubHarness

QUICK = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)
QUERY = "users/u1/queries/00000000-0000-4000-8000-000000000000"


class DrainingHub(svc_grpc.CardLookupServiceServicer):
    """A hub that receives every call and answers UNAVAILABLE (as one that
    is shutting down does); it counts the attempts per method."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()

    async def _refuse(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.attempts[method] += 1
        await abort(context, grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE", "draining", HUB_DOMAIN, {})

    async def GetUser(self, request: svc.GetUserRequest, context: grpc.aio.ServicerContext) -> None:  # type: ignore[override]
        await self._refuse("GetUser", context)

    async def GetQuery(self, request: svc.GetQueryRequest, context: grpc.aio.ServicerContext) -> None:  # type: ignore[override]
        await self._refuse("GetQuery", context)

    async def CreateQuery(self, request: svc.CreateQueryRequest, context: grpc.aio.ServicerContext) -> None:  # type: ignore[override]
        await self._refuse("CreateQuery", context)

    async def StartVerification(self, request: svc.StartVerificationRequest, context: grpc.aio.ServicerContext) -> None:  # type: ignore[override]
        await self._refuse("StartVerification", context)

    async def GetReport(self, request: svc.GetReportRequest, context: grpc.aio.ServicerContext) -> None:  # type: ignore[override]
        await self._refuse("GetReport", context)


@pytest.fixture
async def draining(pki: PkiPaths) -> AsyncIterator[tuple[DrainingHub, int]]:
    servicer = DrainingHub()  # type: ignore[abstract]  # the other methods are never called
    server = grpc.aio.server()
    svc_grpc.add_CardLookupServiceServicer_to_server(servicer, server)
    creds = server_credentials(pki.cert("hub-server"), pki.key("hub-server"), pki.ca_cert)
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    yield servicer, port
    await server.stop(grace=0)


def quick_options(pki: PkiPaths, port: int) -> ClientOptions:
    return dataclasses.replace(client_options(pki, port), retry=QUICK, timeout_s=5.0, create_timeout_s=5.0)


async def test_only_safe_calls_are_resent_on_unavailable(pki: PkiPaths, draining: tuple[DrainingHub, int]) -> None:
    hub_, port = draining
    async with AsyncCardLookupClient(quick_options(pki, port)) as client:
        for call in (
            client.get_user("u1"),
            client.get_query("u1", QUERY.rsplit("/", 1)[1]),
            client.create_query(
                user_id="u1",
                request_id="r1",
                verification_id="v",
                sms_code="123456",
                face_attestation=None,
                consent_text_version="1",
                bank_codes=["102"],
            ),
            client.start_verification("u1"),
            client.get_report("u1", QUERY.rsplit("/", 1)[1], "123456"),
        ):
            with pytest.raises(HubUnavailable):
                await call
    assert hub_.attempts == {
        "GetUser": QUICK.max_attempts,
        "GetQuery": QUICK.max_attempts,
        "CreateQuery": QUICK.max_attempts,  # idempotent on request_id
        "StartVerification": 1,  # would send another SMS
        "GetReport": 1,  # would count towards the lockout
    }
    assert {"GetUser", "GetQuery", "CreateQuery"} <= set(RETRIED_METHODS)
    assert not {"StartVerification", "GetReport"} & set(RETRIED_METHODS)


async def test_the_sync_client_applies_the_same_policy(pki: PkiPaths, draining: tuple[DrainingHub, int]) -> None:
    hub_, port = draining

    def calls() -> None:
        with CardLookupClient(quick_options(pki, port)) as client:
            with pytest.raises(HubUnavailable):
                client.get_query("u1", QUERY.rsplit("/", 1)[1])
            with pytest.raises(HubUnavailable):
                client.get_report("u1", QUERY.rsplit("/", 1)[1], "123456")

    await asyncio.to_thread(calls)
    assert hub_.attempts == {"GetQuery": QUICK.max_attempts, "GetReport": 1}


async def test_safe_calls_ride_out_a_hub_restart(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> None:
    config = HubConfig.dev(pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", timings=FAST)
    first = HubServer(config, clock=clock, installers=[hub.api.install])
    await first.start()
    port = first.port
    face = DevFaceProvider.from_file(pki.face_provider_key)
    outbox = config.sms_outbox or tmp_path / "sms-outbox.jsonl"
    async with AsyncCardLookupClient(client_options(pki, port)) as client:
        h = HubHarness(client, first, fleet, clock, population, outbox, face)
        person = h.eligible(0)
        await h.enrol(person)
        query = await h.ready_query(person, ["102"])
        await first.stop(grace=0)

        # The hub is down: a safe call waits for it, an unsafe one fails at once.
        pending = asyncio.create_task(client.get_query(person.user_id, query.query_id))
        with pytest.raises(HubUnavailable):
            await client.get_report(person.user_id, query.query_id, person.payment_password)
        assert not pending.done()  # the unsafe call failed while the safe one still waits for the hub
        await asyncio.sleep(2.0)  # an outage longer than all retries of a fail-fast call (< 1.4 s)
        assert not pending.done()

        second = HubServer(
            dataclasses.replace(config, listen=f"127.0.0.1:{port}"), clock=clock, installers=[hub.api.install]
        )
        await second.start()
        try:
            again = await asyncio.wait_for(pending, 10)
            assert again.query_id == query.query_id and again.state == query.state
        finally:
            await second.stop(grace=0)
