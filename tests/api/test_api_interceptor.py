"""The API interceptor (hub.api.interceptors), issue 9 items 1, 2 and 9:
caller identity from the SubjectAltName only, malformed or oversized
protobuf refused with a reason and no internal detail, and a cap on the
WatchQuery streams one caller keeps open."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet
from cardlookup import pki as pki_module
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.pki import APP_BACKEND_NAME, HUB_SERVER_NAME, PkiPaths
from cardlookup.population import Population
from cardlookup.rpc_errors import HUB_DOMAIN, error_info_of
from cardlookup.tls import channel_credentials
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.api.limits import MAX_REQUEST_BYTES
from hub.core.config import HubConfig
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.helpers import HubHarness

SERVICE = "/cardlookup.hub.v1.CardLookupService/"


def cert_with(pki: PkiPaths, name: str, common_name: str, dns_names: list[str]) -> tuple[Path, Path]:
    """A client certificate from the PKI's own CA with a chosen CN and SANs."""
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_name = pki_module._load_or_create_ca(pki, now)
    cert_pem, key_pem = pki_module._issue(
        ca_key, ca_name, common_name, dns_names, [], [ExtendedKeyUsageOID.CLIENT_AUTH], now, 1
    )
    pki.cert(name).write_bytes(cert_pem)
    pki.key(name).write_bytes(key_pem)
    return pki.cert(name), pki.key(name)


def channel(pki: PkiPaths, port: int, cert: Path, key: Path) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        channel_credentials(pki.ca_cert, cert, key),
        options=[("grpc.ssl_target_name_override", HUB_SERVER_NAME), ("grpc.max_send_message_length", -1)],
    )


def raw_unary(ch: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    """A method that sends bytes as they are (identity serializers)."""
    return ch.unary_unary(SERVICE + method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


async def refusal(call: object) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    info = error_info_of(caught.value)
    assert info is not None, f"no ErrorInfo: {caught.value.code()} {caught.value.details()}"
    assert info.domain == HUB_DOMAIN
    return caught.value.code(), info.reason, caught.value.details() or ""


async def test_item1_a_common_name_alone_does_not_make_a_caller(harness: HubHarness, pki: PkiPaths) -> None:
    """CN = the app backend's name, SAN = another name: refused. The same
    name in the SAN (whatever the CN) is accepted."""
    port = harness.server.port
    cert, key = cert_with(pki, "cn-only", APP_BACKEND_NAME, ["intruder.example.com"])
    async with channel(pki, port, cert, key) as ch:
        request = svc.GetUserRequest(user_id="u1").SerializeToString()
        code, reason, _ = await refusal(raw_unary(ch, "GetUser")(request, timeout=10))
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
        stream = ch.unary_stream(SERVICE + "WatchQuery", request_serializer=lambda b: b)
        call = stream(svc.WatchQueryRequest(name=f"users/u1/queries/{uuid.uuid4()}").SerializeToString())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    cert, key = cert_with(pki, "san-ok", "anything at all", [APP_BACKEND_NAME])
    async with channel(pki, port, cert, key) as ch:
        code, reason, _ = await refusal(raw_unary(ch, "GetUser")(request, timeout=10))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


MALFORMED = {
    "invalid UTF-8 in a string": b"\x0a\x02\xff\xfe",
    "truncated message": b"\x0a\x05ab",
    "field number 0": b"\x00\x01",
    "deep nesting": b"\x0b" * 200,
    "group end without start": b"\x0c",
    "varint too long": b"\x08" + b"\xff" * 11,
}


@pytest.mark.parametrize("method", ["EnrollUser", "GetUser", "CreateQuery", "GetReport", "ListQueries"])
async def test_item2_malformed_protobuf_is_invalid_argument_with_a_reason(
    harness: HubHarness, pki: PkiPaths, method: str
) -> None:
    async with channel(pki, harness.server.port, pki.cert("app-backend"), pki.key("app-backend")) as ch:
        for label, raw in MALFORMED.items():
            code, reason, details = await refusal(raw_unary(ch, method)(raw, timeout=10))
            assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"), label
            for leak in ("Error parsing", "DecodeError", "Traceback", "Unexpected", ".py"):
                assert leak not in details, (label, details)


async def test_item2_oversized_request_is_resource_exhausted_with_a_reason(harness: HubHarness, pki: PkiPaths) -> None:
    big = svc.GetUserRequest(user_id="u" * (MAX_REQUEST_BYTES + 10)).SerializeToString()
    async with channel(pki, harness.server.port, pki.cert("app-backend"), pki.key("app-backend")) as ch:
        code, reason, details = await refusal(raw_unary(ch, "GetUser")(big, timeout=10))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE")
    assert str(MAX_REQUEST_BYTES) in details


async def test_item2_a_malformed_stream_request_is_refused_the_same_way(harness: HubHarness, pki: PkiPaths) -> None:
    async with channel(pki, harness.server.port, pki.cert("app-backend"), pki.key("app-backend")) as ch:
        stream = ch.unary_stream(SERVICE + "WatchQuery", request_serializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stream(b"\x0a\x02\xff\xfe", timeout=10):
                pass
    info = error_info_of(caught.value)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info is not None and info.reason == "MALFORMED_REQUEST"


@pytest.fixture
async def capped(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    """A hub that lets one caller keep 2 WatchQuery streams open."""
    timings = dataclasses.replace(FAST, watch_streams_per_caller=2)
    config = HubConfig.dev(pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", timings=timings)
    server = await start_hub(config, clock)
    try:
        async with AsyncCardLookupClient(client_options(pki, server.port)) as client:
            face = DevFaceProvider.from_file(pki.face_provider_key)
            yield HubHarness(client, server, fleet, clock, population, tmp_path / "sms-outbox.jsonl", face)
    finally:
        await server.stop(grace=0)


async def test_item9_watch_streams_per_caller_are_capped(capped: HubHarness) -> None:
    hub, person = capped, capped.eligible()
    await hub.enrol(person)
    hub.fleet.set_faults("103", Faults(down=True))  # keeps the query RUNNING
    query = await hub.create(person, ["102", "103"])
    stub = hub.client.stub
    request = svc.WatchQueryRequest(name=f"users/{person.user_id}/queries/{query.query_id}")
    open_calls = [stub.WatchQuery(request), stub.WatchQuery(request)]
    for call in open_calls:
        await call.read()  # the first message: the stream is open and counted
    interceptor = hub.server.api_interceptor
    assert interceptor is not None and interceptor.open_watch_streams(APP_BACKEND_NAME) == 2
    third = stub.WatchQuery(request)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await third.read()
    info = error_info_of(caught.value)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info is not None and info.reason == "WATCH_LIMIT_REACHED" and info.metadata["limit"] == "2"
    open_calls[0].cancel()
    for _ in range(100):
        if interceptor.open_watch_streams(APP_BACKEND_NAME) < 2:
            break
        await asyncio.sleep(0.02)
    fourth = stub.WatchQuery(request)
    assert (await fourth.read()).query.query_id == query.query_id
    fourth.cancel()
    open_calls[1].cancel()
