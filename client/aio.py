"""The async client of the hub API, for an asyncio app backend.

    async with AsyncCardLookupClient(ClientOptions.from_pki("pki", "127.0.0.1:50051")) as hub:
        user = await hub.get_user("u1")

The channel is opened by `async with`, `connect()` or the first call, inside
the running event loop (gRPC channels belong to one loop), and closed by
leaving the block or `close()`. Every method raises a
`client.errors.CardLookupError` subclass on failure, never a raw grpc error:
each stub call goes through `client.errors.translated()`. The sync client
(client.sync) has the same methods with the same parameters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf.message import Message

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.tls import channel_credentials
from client import device_key as device_key_mod
from client import requests
from client.errors import HubUnavailable, translated
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
        """Opens the channel, once: a second call (e.g. `async with` after
        `wait_ready()`) keeps the open one rather than leaking it."""
        if self._channel is not None:
            return
        o = self.options
        self._channel = grpc.aio.secure_channel(
            o.channel_target(), channel_credentials(o.ca, o.cert, o.key), options=o.channel_options()
        )
        self._stub = svc_grpc.CardLookupServiceStub(self._channel)

    async def close(self) -> None:
        """Closes the channel (idempotent); a later call opens a new one."""
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close(None)

    async def wait_ready(self, timeout_s: float) -> None:
        """Waits until the channel is connected to a hub (e.g. one that is
        starting); HubUnavailable after `timeout_s`."""
        self.connect()
        assert self._channel is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError:
            raise HubUnavailable(
                grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE", f"not connected within {timeout_s} s", {}
            ) from None

    @property
    def stub(self) -> svc_grpc.CardLookupServiceAsyncStub:
        """The generated stub, for calls this client does not wrap (raw grpc errors)."""
        self.connect()
        assert self._stub is not None
        return self._stub

    async def _unary(self, method: str, request: Message) -> Any:
        with translated():
            return await getattr(self.stub, method)(request, **self.options.call_kwargs(method))

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
        report_public_key: bytes = b"",
    ) -> pb.User:
        """`report_public_key` (issue 17): the device's X25519 public key
        (client.device_key.public_bytes); reports are then sealed to it."""
        request = requests.enroll_user(
            user_id=user_id,
            full_name=full_name,
            id_number=id_number,
            id_expiry_date=id_expiry_date,
            region_code=region_code,
            phone_number=phone_number,
            payment_password=payment_password,
        )
        request.report_public_key = report_public_key
        user: pb.User = (await self._unary("EnrollUser", request)).user
        return user

    async def get_user(self, user_id: str) -> pb.User:
        user: pb.User = (await self._unary("GetUser", requests.get_user(user_id))).user
        return user

    async def list_banks(self, user_id: str) -> svc.ListBanksResponse:
        listed: svc.ListBanksResponse = await self._unary("ListBanks", requests.list_banks(user_id))
        return listed

    async def start_verification(self, user_id: str) -> svc.StartVerificationResponse:
        started: svc.StartVerificationResponse = await self._unary(
            "StartVerification", requests.start_verification(user_id)
        )
        return started

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
        query: pb.Query = (await self._unary("CreateQuery", request)).query
        return query

    async def get_query(self, user_id: str, query_id: str) -> pb.Query:
        query: pb.Query = (await self._unary("GetQuery", requests.get_query(user_id, query_id))).query
        return query

    async def watch_query(
        self, user_id: str, query_id: str, changes_only: bool = False
    ) -> AsyncIterator[svc.WatchQueryResponse]:
        """The query's progress: the current state, then one message per bank
        outcome; ends after the message in which the query is READY. With
        `changes_only` (WATCH_VIEW_CHANGES), each message after the first
        carries only what changed: keep the query current with
        `client.requests.apply_changes` (linear in the banks, not quadratic)."""
        request = requests.watch_query(user_id, query_id, changes_only)
        call = self.stub.WatchQuery(request, **self.options.call_kwargs("WatchQuery"))
        try:
            with translated():
                async for message in call:
                    yield message
        finally:
            call.cancel()

    async def list_queries(self, user_id: str, page_size: int = 0, page_token: str = "") -> svc.ListQueriesResponse:
        request = requests.list_queries(user_id, page_size, page_token)
        page: svc.ListQueriesResponse = await self._unary("ListQueries", request)
        return page

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

    async def get_report(
        self, user_id: str, query_id: str, payment_password: str, device_key: X25519PrivateKey | None = None
    ) -> pb.Report:
        """The report; one sealed to the user's device (issue 17) is opened
        here with `device_key` (client.device_key.DeviceKeyNeeded without it)."""
        request = requests.get_report(user_id, query_id, payment_password)
        response: svc.GetReportResponse = await self._unary("GetReport", request)
        return device_key_mod.open_report(response, device_key, user_id, query_id)

    async def replace_report_key(self, user_id: str, payment_password: str, report_public_key: bytes) -> int:
        """Registers a new device's report key (issue 17), guarded by the
        payment password; returns the key's epoch. Sent once (a wrong password
        counts towards the lockout)."""
        request = svc.ReplaceReportKeyRequest(
            user_id=user_id, payment_password=payment_password, report_public_key=report_public_key
        )
        replaced: svc.ReplaceReportKeyResponse = await self._unary("ReplaceReportKey", request)
        return replaced.report_key_epoch

    async def change_payment_password(
        self, user_id: str, old_password: str, new_password: str
    ) -> svc.ChangePaymentPasswordResponse:
        """Changes the payment password; the user's live reports are re-sealed
        to it. Sent once (a wrong old password counts towards the lockout)."""
        request = requests.change_payment_password(user_id, old_password, new_password)
        changed: svc.ChangePaymentPasswordResponse = await self._unary("ChangePaymentPassword", request)
        return changed

    async def delete_user(self, user_id: str, payment_password: str) -> svc.DeleteUserResponse:
        """Closes the account and erases the user's data at the hub (issue
        22), guarded by the payment password (checked and counted towards the
        lockout like GetReport's). Sent once; after a lost response, a second
        call says USER_NOT_FOUND (the account is closed)."""
        request = requests.delete_user(user_id, payment_password)
        closed: svc.DeleteUserResponse = await self._unary("DeleteUser", request)
        return closed

    async def flag_card(
        self,
        user_id: str,
        query_id: str,
        payment_password: str,
        card_id: str,
        kind: pb.CardCaseKind = pb.CARD_CASE_KIND_NOT_RECOGNISED,
        device_key: X25519PrivateKey | None = None,
    ) -> pb.CardCase:
        """Not my card: opens a case about one card of the report at its bank
        (the payment password opens the report; the attempt is recorded and
        counts towards the lockout like GetReport's). Sent once. For a report
        sealed to the device (issue 17) pass `device_key`: the report is
        fetched and opened here to send the card's bank reference along."""
        device_card = None
        if device_key is not None:
            fetched = requests.get_report(user_id, query_id, payment_password)
            response: svc.GetReportResponse = await self._unary("GetReport", fetched)
            device_card = device_key_mod.sealed_card(response, device_key, query_id, card_id)
        request = requests.flag_card(user_id, query_id, payment_password, card_id, kind, device_card)
        case: pb.CardCase = (await self._unary("FlagCard", request)).card_case
        return case

    async def create_query_request(self, request: svc.CreateQueryRequest) -> pb.Query:
        """CreateQuery from a prepared request (client.requests.create_query,
        e.g. with `track_new_cards` set through requests.tracking_new_cards):
        the same deadline and retries as create_query."""
        query: pb.Query = (await self._unary("CreateQuery", request)).query
        return query
