"""The fleet's admin API (cardlookup.banksim.v1.BankSimAdminService): read
and change fault switches at run time. Conversions between `Faults` and its
protobuf mirror live here too; the admin client uses them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import NoReturn

import grpc
from google.protobuf import timestamp_pb2

from bank_sim.faults import Faults, FaultsError, Misbehaviour
from bank_sim.state import BankState
from cardlookup.banksim.v1 import bank_sim_admin_pb2 as admin_pb
from cardlookup.banksim.v1 import bank_sim_admin_pb2_grpc as admin_grpc
from cardlookup.checksums import is_valid_id_number
from cardlookup.pki import APP_BACKEND_NAME, HUB_CLIENT_NAME
from cardlookup.population import CardKind
from cardlookup.rpc_errors import abort
from cardlookup.tls import peer_names

ADMIN_DOMAIN = "cardlookup.banksim.v1"
ADMIN_CALLERS = frozenset({HUB_CLIENT_NAME, APP_BACKEND_NAME})


def faults_to_proto(faults: Faults) -> admin_pb.Faults:
    message = admin_pb.Faults(
        latency=faults.latency,
        latency_jitter=faults.latency_jitter,
        error_rate=faults.error_rate,
        error_code=faults.error_code,
        down=faults.down,
        outages=[
            admin_pb.OutageWindow(start_time=_timestamp(start), end_time=_timestamp(end))
            for start, end in faults.outages
        ],
        # Enum fields accept the value's name.
        misbehaviour=f"MISBEHAVIOUR_{faults.misbehaviour or 'UNSPECIFIED'}",
    )
    for name in ("break_after_cards", "stall_after_cards", "max_concurrent"):
        value = getattr(faults, name)
        if value is not None:
            setattr(message, name, value)
    return message


def faults_from_proto(message: admin_pb.Faults) -> Faults:
    """Raises FaultsError for a value Faults refuses."""
    misbehaviour: Misbehaviour | None = None
    if message.misbehaviour != admin_pb.MISBEHAVIOUR_UNSPECIFIED:
        try:
            name = admin_pb.Misbehaviour.Name(message.misbehaviour)
        except ValueError:
            raise FaultsError("misbehaviour", "unknown value") from None
        misbehaviour = Misbehaviour(name.removeprefix("MISBEHAVIOUR_"))
    windows = []
    for window in message.outages:
        if not window.HasField("start_time") or not window.HasField("end_time"):
            raise FaultsError("outages", "a window needs start_time and end_time")
        windows.append((window.start_time.ToDatetime(dt.UTC), window.end_time.ToDatetime(dt.UTC)))
    return Faults(
        latency=message.latency,
        latency_jitter=message.latency_jitter,
        error_rate=message.error_rate,
        error_code=message.error_code or "UNAVAILABLE",
        down=message.down,
        outages=tuple(windows),
        break_after_cards=message.break_after_cards if message.HasField("break_after_cards") else None,
        stall_after_cards=message.stall_after_cards if message.HasField("stall_after_cards") else None,
        max_concurrent=message.max_concurrent if message.HasField("max_concurrent") else None,
        misbehaviour=misbehaviour,
    )


def _timestamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


class BankSimAdminServicer(admin_grpc.BankSimAdminServiceServicer):
    def __init__(
        self,
        banks: Mapping[str, BankState],
        address_of: Callable[[str], str],
        allowed_callers: frozenset[str] = ADMIN_CALLERS,
    ) -> None:
        self._banks = banks
        self._address_of = address_of
        self._allowed_callers = allowed_callers

    async def SetFaults(
        self, request: admin_pb.SetFaultsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.SetFaultsResponse:
        state = await self._bank(request.bank_code, context)
        if not request.HasField("faults"):
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FAULTS", "faults is required", "faults")
        try:
            faults = faults_from_proto(request.faults)
        except FaultsError as error:
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FAULTS", str(error), error.field)
        state.faults = faults
        return admin_pb.SetFaultsResponse(faults=faults_to_proto(faults))

    async def GetFaults(
        self, request: admin_pb.GetFaultsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.GetFaultsResponse:
        state = await self._bank(request.bank_code, context)
        return admin_pb.GetFaultsResponse(faults=faults_to_proto(state.faults))

    async def ListBanks(
        self, request: admin_pb.ListBanksRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.ListBanksResponse:
        await self._admit(context)
        return admin_pb.ListBanksResponse(
            banks=[
                admin_pb.SimulatedBank(
                    bank_code=code,
                    address=self._address_of(code),
                    call_count=state.call_count,
                    faults=faults_to_proto(state.faults),
                    overlap_count=state.overlaps,
                    max_calls_per_query=state.max_per_query,
                )
                for code, state in self._banks.items()
            ]
        )

    async def IssueCard(
        self, request: admin_pb.IssueCardRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.IssueCardResponse:
        state = await self._bank(request.bank_code, context)
        if not is_valid_id_number(request.id_number):
            await _refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", "id_number is not valid", "id_number"
            )
        kind = _ISSUED_KINDS.get(request.card_type)
        if kind is None:
            await _refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", "card_type is required", "card_type"
            )
        card = state.issued.issue(request.bank_code, request.id_number, kind)
        return admin_pb.IssueCardResponse(
            first_four=card.first_four,
            last_four=card.number[-4:],
            number_length=len(card.number),
            card_ref=card.card_ref,
        )

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        if not peer_names(context) & self._allowed_callers:
            await abort(
                context, grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED", "not an admin caller", ADMIN_DOMAIN
            )

    async def _bank(self, code: str, context: grpc.aio.ServicerContext) -> BankState:
        await self._admit(context)
        if not code:
            await _refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", "bank_code is required", "bank_code"
            )
        state = self._banks.get(code)
        if state is None:
            await abort(
                context, grpc.StatusCode.NOT_FOUND, "UNKNOWN_BANK", "no such bank", ADMIN_DOMAIN, {"bank_code": code}
            )
        return state


async def _refuse(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str, message: str, field: str
) -> NoReturn:
    await abort(context, code, reason, message, ADMIN_DOMAIN, {"field": field})


_ISSUED_KINDS: dict[int, CardKind] = {
    admin_pb.ISSUED_CARD_TYPE_DEBIT: "debit",
    admin_pb.ISSUED_CARD_TYPE_CREDIT: "credit",
}
