"""A hub-like caller of simulated banks for the tests: mTLS with a chosen
client certificate, the bank's TLS name, consents signed with the dev key."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.consent import sign_consent
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, bank_server_name, load_ed25519_private
from cardlookup.tls import channel_credentials

TIMEOUT = 10.0


@dataclass(frozen=True)
class Streamed:
    cards: list[bank_pb.MaskedCard]
    summary: bank_pb.ListCardsSummary | None
    """None when the stream ended without a summary."""


class BankCaller:
    """One channel per bank, shared by concurrent calls."""

    def __init__(self, pki: PkiPaths, addresses: dict[str, str], identity: str = "hub-client") -> None:
        self._pki = pki
        self._signing_key = load_ed25519_private(pki.consent_signing_key)
        creds = channel_credentials(pki.ca_cert, pki.cert(identity), pki.key(identity))
        self.channels = {
            code: grpc.aio.secure_channel(
                address, creds, options=[("grpc.ssl_target_name_override", bank_server_name(code))]
            )
            for code, address in addresses.items()
        }
        self.stubs = {code: bank_grpc.CardDirectoryServiceStub(ch) for code, ch in self.channels.items()}

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close(None)

    def request(
        self,
        code: str,
        full_name: str,
        id_number: str,
        *,
        now: dt.datetime,
        query_id: str | None = None,
        consent_bank: str | None = None,
        consent_query: str | None = None,
        consent_id_number: str | None = None,
        lifetime: dt.timedelta = dt.timedelta(hours=24),
        issue_time: dt.datetime | None = None,
        signed_by: tuple[str, Ed25519PrivateKey] | None = None,
    ) -> bank_pb.ListCardsRequest:
        """A request with a valid consent, or one bent by the overrides
        (`signed_by`: key id and key instead of the dev consent key)."""
        query_id = query_id or str(uuid.uuid4())
        issued = issue_time or now
        key_id, key = signed_by or (CONSENT_KEY_ID, self._signing_key)
        consent = sign_consent(
            key,
            key_id,
            query_id=consent_query or query_id,
            bank_code=consent_bank or code,
            id_number=consent_id_number or id_number,
            full_name=full_name,
            issue_time=issued,
            expire_time=issued + lifetime,
            consent_text_version="2022-03-01",
        )
        return bank_pb.ListCardsRequest(
            query_id=query_id,
            subject=bank_pb.Subject(full_name=full_name, id_number=id_number),
            consent=consent,
        )

    async def list_cards(self, code: str, request: bank_pb.ListCardsRequest, rpc_timeout: float = TIMEOUT) -> Streamed:
        """The whole stream; raises grpc.aio.AioRpcError on a failed call."""
        cards: list[bank_pb.MaskedCard] = []
        summary = None
        async for message in self.stubs[code].ListCards(request, timeout=rpc_timeout):
            if message.HasField("card"):
                cards.append(message.card)
            else:
                summary = message.summary
        return Streamed(cards, summary)

    async def cards_before_failure(
        self, code: str, request: bank_pb.ListCardsRequest, rpc_timeout: float = TIMEOUT
    ) -> tuple[list[bank_pb.ListCardsResponse], grpc.aio.AioRpcError]:
        """The messages received before the call failed, and its error."""
        received: list[bank_pb.ListCardsResponse] = []
        try:
            async for message in self.stubs[code].ListCards(request, timeout=rpc_timeout):
                received.append(message)
        except grpc.aio.AioRpcError as error:
            return received, error
        raise AssertionError("the call succeeded")


@asynccontextmanager
async def bank_caller(
    pki: PkiPaths, addresses: dict[str, str], identity: str = "hub-client"
) -> AsyncIterator[BankCaller]:
    caller = BankCaller(pki, addresses, identity)
    try:
        yield caller
    finally:
        await caller.close()
