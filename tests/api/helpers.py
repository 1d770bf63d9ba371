"""The user's journey as test steps over the real client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import hub.api
from bank_sim.fleet import BankFleet
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.population import Person, Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.errors import CardLookupError
from hub.core.config import HubConfig
from hub.core.notify import latest_verification_code
from hub.identity.closure import AccountClosure
from hub.process.server import HubServer


@dataclass
class HubHarness:
    client: AsyncCardLookupClient
    server: HubServer
    fleet: BankFleet
    clock: ManualClock
    population: Population
    outbox: Path
    face: DevFaceProvider

    def eligible(self, index: int = 0) -> Person:
        return self.population.eligible_people(self.clock.now().date())[index]

    async def enrol(self, person: Person) -> pb.User:
        return await self.client.enroll_user(**person.enrolment())

    def last_code(self, phone: str) -> str:
        code = latest_verification_code(self.outbox, phone)
        assert code is not None, "no SMS code was sent"
        return code

    async def verify(self, person: Person) -> tuple[str, str]:
        """(verification_id, code) after StartVerification."""
        started = await self.client.start_verification(person.user_id)
        return started.verification_id, self.last_code(person.phone)

    async def create(
        self, person: Person, banks: Sequence[str] = DEFAULT_BANK_CODES, request_id: str | None = None
    ) -> pb.Query:
        verification_id, code = await self.verify(person)
        return await self.client.create_query(
            user_id=person.user_id,
            request_id=request_id or uuid.uuid4().hex,
            verification_id=verification_id,
            sms_code=code,
            face_attestation=self.face.attest(person.user_id, verification_id, self.clock.now()),
            consent_text_version=(await self.client.list_banks(person.user_id)).consent_text_version,
            bank_codes=list(banks),
        )

    async def until_ready(self, person: Person, query_id: str) -> pb.Query:
        last = None
        async for message in self.client.watch_query(person.user_id, query_id):
            last = message.query
        assert last is not None and last.state == pb.QUERY_STATE_READY
        return last

    async def ready_query(self, person: Person, banks: Sequence[str] = DEFAULT_BANK_CODES) -> pb.Query:
        query = await self.create(person, banks)
        return await self.until_ready(person, query.query_id)


async def refused(reason: str, awaitable: object) -> CardLookupError:
    """Awaits and expects a CardLookupError with `reason`."""
    with pytest.raises(CardLookupError) as info:
        await awaitable  # type: ignore[misc]
    assert info.value.reason == reason, info.value
    return info.value


def closure_of(hub: HubHarness) -> AccountClosure:
    """The hub's account-closure service (issue 22), whose retention sweep
    is one of the hub's background tasks."""
    assert hub.server.context is not None
    for run in hub.server.context.background:
        owner = getattr(run, "__self__", None)
        if isinstance(owner, AccountClosure):
            return owner
    raise AssertionError("no AccountClosure installed")


async def started_from_file(config: HubConfig, path: Path, clock: ManualClock) -> HubServer:
    """A hub with the API, started from `config` written to `path` as an
    operator's hub.toml, so that a reload (SIGHUP, admin Reload) re-reads it."""
    await asyncio.to_thread(path.write_text, config.to_toml(), encoding="utf-8")
    server = HubServer(HubConfig.from_file(path), clock=clock, installers=[hub.api.install], config_path=path)
    await server.start()
    return server
