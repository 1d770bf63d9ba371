"""The async client of the hub API, for an asyncio app backend.

    async with AsyncCardLookupClient(ClientOptions.from_pki("pki", "127.0.0.1:50051")) as hub:
        user = await hub.get_user("u1")

Create the client inside the running event loop (gRPC channels belong to
one loop). Every method raises a `client.errors.CardLookupError` subclass on
failure, never a raw grpc error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import grpc

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.tls import channel_credentials
from client import requests
from client.errors import HubUnavailable, from_rpc_error
from client.options import ClientOptions


class AsyncCardLookupClient:
    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self._channel: grpc.aio.Channel | None = None
        self._stub: svc_grpc.CardLookupServiceAsyncStub | None = None

    async def __aenter__(self) -> AsyncCardLookupClient:
        self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def connect(self) -> None:
        o = self.options
        self._channel = grpc.aio.secure_channel(
            o.target, channel_credentials(o.ca, o.cert, o.key), options=o.channel_options()
        )
        self._stub = svc_grpc.CardLookupServiceStub(self._channel)

    def _ready(self, method: str) -> bool:
        return self.options.waits_for_ready(method)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    async def wait_ready(self, timeout_s: float) -> None:
        """Waits until the channel is connected (e.g. a hub that is starting)."""
        if self._channel is None:
            self.connect()
        assert self._channel is not None
        await _wait(self._channel, timeout_s)

    @property
    def stub(self) -> svc_grpc.CardLookupServiceAsyncStub:
        if self._stub is None:
            raise RuntimeError("the client is not connected: use `async with` or call connect()")
        return self._stub

    async def enroll_user(
        self,
        *,
        user_id: str,
        full_name: str,
        id_number: str,
        id_expiry_date: dt.date | None,
        region_code: str,
        phone_number: str,
        payment_password: str = "",
    ) -> pb.User:
        request = requests.enroll_user(
            user_id=user_id,
            full_name=full_name,
            id_number=id_number,
            id_expiry_date=id_expiry_date,
            region_code=region_code,
            phone_number=phone_number,
            payment_password=payment_password,
        )
        try:
            return (
                await self.stub.EnrollUser(
                    request, timeout=self.options.timeout_s, wait_for_ready=self._ready("EnrollUser")
                )
            ).user
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def get_user(self, user_id: str) -> pb.User:
        try:
            return (
                await self.stub.GetUser(
                    svc.GetUserRequest(user_id=user_id),
                    timeout=self.options.timeout_s,
                    wait_for_ready=self._ready("GetUser"),
                )
            ).user
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def list_banks(self, user_id: str) -> svc.ListBanksResponse:
        try:
            return await self.stub.ListBanks(
                svc.ListBanksRequest(user_id=user_id),
                timeout=self.options.timeout_s,
                wait_for_ready=self._ready("ListBanks"),
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def start_verification(self, user_id: str) -> svc.StartVerificationResponse:
        try:
            return await self.stub.StartVerification(
                svc.StartVerificationRequest(user_id=user_id), timeout=self.options.timeout_s
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def create_query(
        self,
        *,
        user_id: str,
        request_id: str,
        verification_id: str,
        sms_code: str,
        face_attestation: face_pb.FaceAttestation | None,
        consent_text_version: str,
        bank_codes: Sequence[str],
    ) -> pb.Query:
        request = requests.create_query(
            user_id=user_id,
            request_id=request_id,
            verification_id=verification_id,
            sms_code=sms_code,
            face_attestation=face_attestation,
            consent_text_version=consent_text_version,
            bank_codes=bank_codes,
        )
        try:
            return (
                await self.stub.CreateQuery(
                    request, timeout=self.options.create_timeout_s, wait_for_ready=self._ready("CreateQuery")
                )
            ).query
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def get_query(self, user_id: str, query_id: str) -> pb.Query:
        request = requests.get_query(user_id, query_id)
        try:
            return (
                await self.stub.GetQuery(
                    request, timeout=self.options.timeout_s, wait_for_ready=self._ready("GetQuery")
                )
            ).query
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def watch_query(self, user_id: str, query_id: str) -> AsyncIterator[svc.WatchQueryResponse]:
        """The query's progress: the current state, then one message per bank
        outcome; ends after the message in which the query is READY."""
        request = requests.watch_query(user_id, query_id)
        call = self.stub.WatchQuery(
            request, timeout=self.options.watch_timeout_s, wait_for_ready=self._ready("WatchQuery")
        )
        try:
            async for message in call:
                yield message
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    async def list_queries(self, user_id: str, page_size: int = 0, page_token: str = "") -> svc.ListQueriesResponse:
        request = requests.list_queries(user_id, page_size, page_token)
        try:
            return await self.stub.ListQueries(
                request, timeout=self.options.timeout_s, wait_for_ready=self._ready("ListQueries")
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def iter_queries(self, user_id: str, page_size: int = 0) -> AsyncIterator[pb.Query]:
        """Every query of the user, newest first, page by page."""
        token = ""
        while True:
            page = await self.list_queries(user_id, page_size, token)
            for q in page.queries:
                yield q
            token = page.next_page_token
            if not token:
                return

    async def get_report(self, user_id: str, query_id: str, payment_password: str) -> pb.Report:
        request = requests.get_report(user_id, query_id, payment_password)
        try:
            return (await self.stub.GetReport(request, timeout=self.options.timeout_s)).report
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def change_payment_password(
        self, user_id: str, old_password: str, new_password: str
    ) -> svc.ChangePaymentPasswordResponse:
        """Changes the payment password; the user's live reports are re-sealed
        to it. Sent once (a wrong old password counts towards the lockout)."""
        request = requests.change_payment_password(user_id, old_password, new_password)
        try:
            return await self.stub.ChangePaymentPassword(request, timeout=self.options.timeout_s)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def flag_card(
        self,
        user_id: str,
        query_id: str,
        payment_password: str,
        card_id: str,
        kind: pb.CardCaseKind = pb.CARD_CASE_KIND_NOT_RECOGNISED,
    ) -> pb.CardCase:
        """Not my card: opens a case about one card of the report at its bank
        (the payment password opens the report; the attempt is recorded and
        counts towards the lockout like GetReport's). Sent once."""
        request = requests.flag_card(user_id, query_id, payment_password, card_id, kind)
        try:
            return (await self.stub.FlagCard(request, timeout=self.options.timeout_s)).card_case
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def create_query_request(self, request: svc.CreateQueryRequest) -> pb.Query:
        """CreateQuery from a prepared request (client.requests.create_query,
        e.g. with `track_new_cards` set through requests.tracking_new_cards):
        the same deadline and retries as create_query."""
        try:
            return (
                await self.stub.CreateQuery(
                    request, timeout=self.options.create_timeout_s, wait_for_ready=self._ready("CreateQuery")
                )
            ).query
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


async def _wait(channel: grpc.aio.Channel, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout_s)
    except TimeoutError:
        raise HubUnavailable(
            grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE", f"not connected within {timeout_s} s", {}
        ) from None
