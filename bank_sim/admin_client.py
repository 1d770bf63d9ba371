"""A small async client of the fleet's admin API, for fault tests and demos
that run the fleet in another process (`cardlookup-banks`).

    async with AdminClient.connect(pki, admin_address, admin_server_name) as admin:
        await admin.set_faults("102", Faults(error_rate=0.5))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from bank_sim.admin import faults_from_proto, faults_to_proto
from bank_sim.faults import Faults
from cardlookup.banksim.v1 import bank_sim_admin_pb2 as admin_pb
from cardlookup.banksim.v1 import bank_sim_admin_pb2_grpc as admin_grpc
from cardlookup.pki import PkiPaths
from cardlookup.tls import channel_credentials


@dataclass(frozen=True)
class BankListing:
    code: str
    address: str
    call_count: int
    faults: Faults
    overlap_count: int = 0
    """Calls that arrived while one for the same query id was in flight."""
    max_calls_per_query: int = 0
    """The most calls for one query id in flight at once."""


class AdminClient:
    def __init__(self, channel: grpc.aio.Channel, timeout: float = 5.0) -> None:
        self._stub = admin_grpc.BankSimAdminServiceStub(channel)
        self._timeout = timeout

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, pki: PkiPaths, address: str, server_name: str, identity: str = "hub-client", call_timeout: float = 5.0
    ) -> AsyncIterator[AdminClient]:
        """A client over mTLS presenting pki's `identity` certificate
        ("hub-client" or "app-backend")."""
        creds = channel_credentials(pki.ca_cert, pki.cert(identity), pki.key(identity))
        async with grpc.aio.secure_channel(
            address, creds, options=[("grpc.ssl_target_name_override", server_name)]
        ) as channel:
            yield cls(channel, call_timeout)

    async def set_faults(self, code: str, faults: Faults) -> Faults:
        request = admin_pb.SetFaultsRequest(bank_code=code, faults=faults_to_proto(faults))
        response = await self._stub.SetFaults(request, timeout=self._timeout)
        return faults_from_proto(response.faults)

    async def get_faults(self, code: str) -> Faults:
        response = await self._stub.GetFaults(admin_pb.GetFaultsRequest(bank_code=code), timeout=self._timeout)
        return faults_from_proto(response.faults)

    async def list_banks(self) -> list[BankListing]:
        response = await self._stub.ListBanks(admin_pb.ListBanksRequest(), timeout=self._timeout)
        return [
            BankListing(
                code=b.bank_code,
                address=b.address,
                call_count=b.call_count,
                faults=faults_from_proto(b.faults),
                overlap_count=b.overlap_count,
                max_calls_per_query=b.max_calls_per_query,
            )
            for b in response.banks
        ]

    async def issue_card(self, code: str, id_number: str, credit: bool = False) -> admin_pb.IssueCardResponse:
        """Issues a new listed card to a person at bank `code` (IssueCard)."""
        kind = admin_pb.ISSUED_CARD_TYPE_CREDIT if credit else admin_pb.ISSUED_CARD_TYPE_DEBIT
        request = admin_pb.IssueCardRequest(bank_code=code, id_number=id_number, card_type=kind)
        return await self._stub.IssueCard(request, timeout=self._timeout)
