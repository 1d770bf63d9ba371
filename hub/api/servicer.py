"""The cardlookup.hub.v1.CardLookupService servicer: protos in, domain calls,
protos out. Every rule lives in hub.identity. Caller checks, request
decoding, error mapping (a RuleViolation becomes the contract's status and
ErrorInfo) and deadlines are the API interceptor's (hub.api.interceptors),
so each method here is only the conversion."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.hub.v1 import resources_pb2 as pb
from hub.api import convert, names
from hub.core.config import HubConfig
from hub.identity import validation
from hub.identity.card_cases import CardCaseDesk, DeviceCard
from hub.identity.closure import AccountClosure
from hub.identity.journey import CreateRequest, Journey
from hub.identity.new_cards import NewCardTracker
from hub.identity.report_keys import ReportKeys
from hub.identity.users import Enrolment, UserDirectory
from hub.store.card_cases import CardCaseStore

Ctx = grpc.aio.ServicerContext


class CardLookupServicer(svc_grpc.CardLookupServiceServicer):
    def __init__(
        self,
        config: HubConfig,
        users: UserDirectory,
        journey: Journey,
        report_keys: ReportKeys,
        cases: CardCaseDesk,
        case_store: CardCaseStore,
        new_cards: NewCardTracker,
        closure: AccountClosure | None = None,
    ) -> None:
        self._config = config
        self._users = users
        self._journey = journey
        self._report_keys = report_keys
        self._cases = cases
        self._case_store = case_store
        self._new_cards = new_cards
        self._closure = closure

    def reconfigure(self, config: HubConfig) -> None:
        """A reloaded configuration (bank display names)."""
        self._config = config

    async def EnrollUser(
        self, request: svc.EnrollUserRequest, context: grpc.aio.ServicerContext
    ) -> svc.EnrollUserResponse:
        if request.report_public_key:
            validation.report_public_key(request.report_public_key)  # refused before anything is stored
        view = await self._users.enrol(
            Enrolment(
                user_id=request.user_id,
                full_name=request.full_name,
                id_number=request.id_number,
                id_expiry_date=request.id_expiry_date,
                region_code=request.region_code,
                phone_number=request.phone_number,
                payment_password=request.payment_password,
            )
        )
        if request.report_public_key:
            await self._report_keys.set_device_key(view.user_id, request.report_public_key)
        return svc.EnrollUserResponse(user=convert.user(view))

    async def GetUser(self, request: svc.GetUserRequest, context: Ctx) -> svc.GetUserResponse:
        return svc.GetUserResponse(user=convert.user(await self._journey.get_user(request.user_id)))

    async def ListBanks(
        self, request: svc.ListBanksRequest, context: grpc.aio.ServicerContext
    ) -> svc.ListBanksResponse:
        choice = await self._journey.list_banks(request.user_id)
        return svc.ListBanksResponse(
            banks=[convert.bank(b) for b in choice.banks],
            consent_text_version=choice.consent_text_version,
            consent_text=choice.consent_text,
        )

    async def StartVerification(
        self, request: svc.StartVerificationRequest, context: grpc.aio.ServicerContext
    ) -> svc.StartVerificationResponse:
        started, masked_phone = await self._journey.start_verification(request.user_id)
        out = svc.StartVerificationResponse(verification_id=started.verification_id, masked_phone=masked_phone)
        out.expire_time.CopyFrom(convert.ts(started.expire_time))
        out.resend_time.CopyFrom(convert.ts(started.resend_time))
        return out

    async def CreateQuery(
        self, request: svc.CreateQueryRequest, context: grpc.aio.ServicerContext
    ) -> svc.CreateQueryResponse:
        # Issue 12, new cards since the last lookup: opting in is recorded
        # before the query exists (its READY hook must see it); opting out
        # deletes the record only once the query is accepted.
        if request.track_new_cards:
            await self._new_cards.set_preference(request.user_id, True)
        view = await self._journey.create_query(
            CreateRequest(
                user_id=request.user_id,
                request_id=request.request_id,
                verification_id=request.verification_id,
                sms_code=request.sms_code,
                face=convert.attestation(request.face_attestation, request.HasField("face_attestation")),
                consent_text_version=request.consent_text_version,
                bank_codes=tuple(request.bank_codes),
            )
        )
        if not request.track_new_cards:
            await self._new_cards.set_preference(request.user_id, False)
        return svc.CreateQueryResponse(query=convert.query(self._config, view))

    async def GetQuery(self, request: svc.GetQueryRequest, context: Ctx) -> svc.GetQueryResponse:
        user_id, query_id = names.parse_query(request.name)
        view = await self._journey.get_query(user_id, query_id)
        cases = await self._case_store.for_queries([query_id])
        return svc.GetQueryResponse(query=convert.query(self._config, view, cases[query_id]))

    async def WatchQuery(
        self, request: svc.WatchQueryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[svc.WatchQueryResponse]:
        user_id, query_id = names.parse_query(request.name)
        # An unknown (newer) view is served as FULL, which holds everything.
        watched = convert.WatchedQuery(self._config, changes_only=request.view == svc.WATCH_VIEW_CHANGES)
        async for view, changed in self._journey.watch(user_id, query_id):
            yield svc.WatchQueryResponse(query=watched.convert(view, changed), changed_bank_code=changed)

    async def ListQueries(
        self, request: svc.ListQueriesRequest, context: grpc.aio.ServicerContext
    ) -> svc.ListQueriesResponse:
        user_id = names.parse_user(request.parent)
        page = await self._journey.list_queries(user_id, request.page_size, request.page_token)
        cases = await self._case_store.for_queries([v.record.query_id for v in page.queries])
        return svc.ListQueriesResponse(
            queries=[convert.query(self._config, v, cases[v.record.query_id]) for v in page.queries],
            next_page_token=page.next_page_token,
        )

    async def GetReport(
        self, request: svc.GetReportRequest, context: grpc.aio.ServicerContext
    ) -> svc.GetReportResponse:
        user_id, query_id = names.parse_query(request.name, report=True)
        report = await self._journey.get_report(user_id, query_id, request.payment_password)
        if report.sealed:
            # Issue 17: the device opens it (cardlookup.sealed_report).
            head = pb.Report(name=names.report_name(user_id, query_id))
            head.generate_time.CopyFrom(convert.ts(report.generate_time))
            head.expire_time.CopyFrom(convert.ts(report.expire_time))
            return svc.GetReportResponse(
                report=head, sealed_report=report.sealed, sealed_previous_cards=report.sealed_previous_cards
            )
        return svc.GetReportResponse(report=convert.report(self._config, user_id, report))

    async def ReplaceReportKey(
        self, request: svc.ReplaceReportKeyRequest, context: grpc.aio.ServicerContext
    ) -> svc.ReplaceReportKeyResponse:
        validation.app_id(request.user_id, "user_id")
        epoch = await self._report_keys.replace_device_key(
            request.user_id, request.payment_password, request.report_public_key
        )
        return svc.ReplaceReportKeyResponse(report_key_epoch=epoch)

    async def ChangePaymentPassword(
        self, request: svc.ChangePaymentPasswordRequest, context: grpc.aio.ServicerContext
    ) -> svc.ChangePaymentPasswordResponse:
        count = await self._report_keys.change_password(
            request.user_id, request.old_payment_password, request.new_payment_password
        )
        return svc.ChangePaymentPasswordResponse(
            user=convert.user(await self._users.get(request.user_id)), resealed_report_count=count
        )

    async def FlagCard(self, request: svc.FlagCardRequest, context: grpc.aio.ServicerContext) -> svc.FlagCardResponse:
        user_id, query_id = names.parse_query(request.name)
        kind = pb.CardCaseKind.Name(request.kind) if request.kind in pb.CardCaseKind.values() else ""
        device = request.device_card if request.HasField("device_card") else None
        flagged = await self._cases.flag(
            user_id,
            query_id,
            request.payment_password,
            request.card_id,
            kind.removeprefix("CARD_CASE_KIND_"),
            DeviceCard(device.bank_code, device.card_ref, device.first_four, device.last_four) if device else None,
        )
        out = convert.card_case(self._config, flagged.case, pb.CardCase())
        out.masked_card = flagged.masked_card
        out.next_step, out.next_step_english = flagged.next_step, flagged.next_step_english
        return svc.FlagCardResponse(card_case=out)

    async def DeleteUser(
        self, request: svc.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> svc.DeleteUserResponse:
        # Issue 22: account closure with erasure (hub.identity.closure).
        assert self._closure is not None
        closed = await self._closure.close(request.user_id, request.payment_password)
        return svc.DeleteUserResponse(
            erased_query_count=closed.erased_query_count, ended_query_count=closed.ended_query_count
        )
