"""The API interceptor's time budget and response-size limit, on a real
mTLS grpc.aio server whose CardLookupService methods misbehave on purpose
(a store call that hangs, a response too large to send)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.pki import APP_BACKEND_NAME, HUB_SERVER_NAME, PkiPaths
from cardlookup.rpc_errors import error_info_of
from cardlookup.tls import channel_credentials, server_credentials
from hub.api.interceptors import ApiInterceptor
from hub.api.limits import MAX_RESPONSE_BYTES, SERVER_OPTIONS


class Misbehaving(svc_grpc.CardLookupServiceServicer):
    async def GetUser(self, request: svc.GetUserRequest, context: grpc.aio.ServicerContext) -> svc.GetUserResponse:
        await asyncio.sleep(30)  # a store call that never returns
        return svc.GetUserResponse()

    async def ListBanks(
        self, request: svc.ListBanksRequest, context: grpc.aio.ServicerContext
    ) -> svc.ListBanksResponse:
        return svc.ListBanksResponse(consent_text="x" * (MAX_RESPONSE_BYTES + 1))

    async def GetQuery(self, request: svc.GetQueryRequest, context: grpc.aio.ServicerContext) -> svc.GetQueryResponse:
        raise RuntimeError("/secret/path.py exploded")


@pytest.fixture
async def stub(pki: PkiPaths) -> AsyncIterator[svc_grpc.CardLookupServiceStub]:
    interceptor = ApiInterceptor(frozenset({APP_BACKEND_NAME}), max_call_time=0.3)
    server = grpc.aio.server(options=list(SERVER_OPTIONS), interceptors=[interceptor])
    svc_grpc.add_CardLookupServiceServicer_to_server(Misbehaving(), server)
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(pki.cert("hub-server"), pki.key("hub-server"), pki.ca_cert)
    )
    await server.start()
    creds = channel_credentials(pki.ca_cert, pki.cert("app-backend"), pki.key("app-backend"))
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        creds,
        options=[("grpc.ssl_target_name_override", HUB_SERVER_NAME), ("grpc.max_receive_message_length", -1)],
    ) as channel:
        yield svc_grpc.CardLookupServiceStub(channel)
    await server.stop(0)


async def refusal(call: object) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    info = error_info_of(caught.value)
    assert info is not None
    return caught.value.code(), info.reason, caught.value.details() or ""


async def test_a_call_that_hangs_ends_within_the_budget(stub: svc_grpc.CardLookupServiceStub) -> None:
    code, reason, _ = await refusal(stub.GetUser(svc.GetUserRequest(user_id="u1"), timeout=20))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE")


async def test_a_response_too_large_is_refused_with_a_reason(stub: svc_grpc.CardLookupServiceStub) -> None:
    code, reason, _ = await refusal(stub.ListBanks(svc.ListBanksRequest(user_id="u1"), timeout=20))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE")


async def test_an_unexpected_exception_leaks_nothing(stub: svc_grpc.CardLookupServiceStub) -> None:
    name = "users/u1/queries/00000000-0000-0000-0000-000000000000"
    code, reason, details = await refusal(stub.GetQuery(svc.GetQueryRequest(name=name), timeout=20))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE")
    assert "secret" not in details and "exploded" not in details
