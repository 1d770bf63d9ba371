"""The operator admin service (cardlookup.admin.v1.AdminService, issue 11
item 5) and its client command, `cardlookup-admin` (hub.admin.cli).

The service runs on its own port (`admin_listen`) with the hub's server
certificate; every call first checks that the caller's client certificate
names an operator by DNS SubjectAltName (`admin_clients`, default
operator.cardlookup.internal). The certificate's common name is not
consulted: a CN can say anything a SAN was not issued for. Other
certificates of the same CA (the app backend's, a bank's) are refused with
PERMISSION_DENIED, reason CALLER_NOT_OPERATOR.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from cardlookup.admin.v1 import admin_service_pb2 as pb
from cardlookup.admin.v1 import admin_service_pb2_grpc as admin_grpc
from cardlookup.rpc_errors import abort
from cardlookup.tls import peer_names
from hub.admin.rewrap import rewrap_batch
from hub.core.config import ConfigError, HubConfig
from hub.core.logging import get_logger, set_level
from hub.keys.hsm import HsmError
from hub.runtime.context import HubContext
from hub.runtime.reload import reload_problem
from hub.store.db import Database
from hub.telemetry.metrics import BankHealthRow


class AdminTarget(Protocol):
    """What the admin service operates on (HubServer): the admin layer
    depends on this, not on the server, which installs it (no import cycle)."""

    @property
    def config(self) -> HubConfig: ...

    @property
    def context(self) -> HubContext | None: ...

    @property
    def db(self) -> Database: ...

    def bank_health(self) -> list[BankHealthRow]: ...

    async def reload(self, config: HubConfig | None = None) -> list[str]: ...

    async def drain(self) -> tuple[int, int]: ...


ADMIN_DOMAIN = "cardlookup.admin.v1"
SERVICE_NAME = "cardlookup.admin.v1.AdminService"
BREAKER_STATES = {
    "closed": pb.BREAKER_STATE_CLOSED,
    "open": pb.BREAKER_STATE_OPEN,
    "half_open": pb.BREAKER_STATE_HALF_OPEN,
}
log = get_logger("hub.admin")


def peer_dns_names(context: grpc.aio.ServicerContext) -> set[str]:
    """The DNS SubjectAltNames of the caller's certificate: never its CN, and
    never a URI, email or IP SAN (issue 17: `x509_subject_alternative_name`
    mixes every SAN type; cardlookup.tls.peer_names reads `peer_dns`)."""
    return peer_names(context)


class AdminServicer(admin_grpc.AdminServiceServicer):
    def __init__(self, hub: AdminTarget) -> None:
        self._hub = hub

    async def _operator_only(self, context: grpc.aio.ServicerContext) -> None:
        if not peer_dns_names(context) & self._hub.config.admin_clients:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "CALLER_NOT_OPERATOR",
                "only an operator certificate may call the admin service",
                ADMIN_DOMAIN,
            )

    async def GetBankHealth(
        self, request: pb.GetBankHealthRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBankHealthResponse:
        await self._operator_only(context)
        names = {b.code: b.display_name for b in self._hub.config.banks}
        return pb.GetBankHealthResponse(
            banks=[
                pb.BankHealth(
                    bank_code=row.bank_code,
                    display_name=names.get(row.bank_code, ""),
                    recent_calls=row.recent_calls,
                    success_rate=row.success_rate,
                    latency_p50_seconds=row.latency_p50,
                    latency_p99_seconds=row.latency_p99,
                    breaker_state=BREAKER_STATES.get(row.breaker_state, pb.BREAKER_STATE_UNSPECIFIED),
                    in_flight=row.in_flight,
                    last_error_reason=row.last_error_reason,
                )
                for row in self._hub.bank_health()
            ]
        )

    async def Reload(self, request: pb.ReloadRequest, context: grpc.aio.ServicerContext) -> pb.ReloadResponse:
        await self._operator_only(context)
        try:
            changes = await self._hub.reload()
        except (ConfigError, HsmError, OSError, ValueError, KeyError, RuntimeError) as error:
            # HubServer.reload logged it (reload_refused) and applied nothing.

            await abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "CONFIG_INVALID",
                f"{reload_problem(error)}; nothing was changed",
                ADMIN_DOMAIN,
            )
        return pb.ReloadResponse(changes=changes)

    async def Drain(self, request: pb.DrainRequest, context: grpc.aio.ServicerContext) -> pb.DrainResponse:
        await self._operator_only(context)
        api_calls, bank_calls = await self._hub.drain()
        return pb.DrainResponse(api_calls_in_progress=api_calls, bank_calls_in_flight=bank_calls)

    async def SetLogLevel(
        self, request: pb.SetLogLevelRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetLogLevelResponse:
        await self._operator_only(context)
        try:
            previous = set_level(request.level, request.logger)
        except ValueError as error:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", str(error), ADMIN_DOMAIN)
        return pb.SetLogLevelResponse(logger=request.logger, previous_level=previous, level=request.level.upper())

    async def Rewrap(self, request: pb.RewrapRequest, context: grpc.aio.ServicerContext) -> pb.RewrapResponse:
        """Issue 24: one batch onto the current key-encryption key (hub.admin.rewrap)."""
        await self._operator_only(context)
        if request.batch_size < 0:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "batch_size must be 0 or more", ADMIN_DOMAIN
            )
        if self._hub.context is None:
            raise RuntimeError("the hub is not started")
        done = await rewrap_batch(self._hub.db, self._hub.context.keys.envelope, request.batch_size)
        return pb.RewrapResponse(
            rewrapped=done.rewrapped,
            remaining=sum(done.remaining.values()),
            unknown=done.unknown,
            current_key_id=done.current_key_id,
            remaining_by_key_id=dict(done.remaining),
        )


def install_admin(server: grpc.aio.Server, hub: AdminTarget) -> None:
    admin_grpc.add_AdminServiceServicer_to_server(AdminServicer(hub), server)


__all__ = ["ADMIN_DOMAIN", "SERVICE_NAME", "AdminServicer", "AdminTarget", "install_admin", "peer_dns_names"]
