"""Drives full queries through the hub as the app backend does, with
`client.aio`: StartVerification, the SMS code read from the hub's outbox
file, CreateQuery with a dev face attestation, then WatchQuery until READY.
Latency is CreateQuery sent -> the READY message received."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Sequence

from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.population import Person
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.requests import apply_changes
from hub.core.notify import OutboxTail

ENROL_CONCURRENCY = 4
"""Enrolment runs two argon2id derivations at the hub (the password hash, and
the report key of issue 12): more at once only queues CPU-bound work behind
the per-call deadline."""


async def enrol_one(hub: AsyncCardLookupClient, p: Person) -> None:
    await hub.enroll_user(**p.enrolment())


async def enrol(hub: AsyncCardLookupClient, people: Sequence[Person]) -> None:
    gate = asyncio.Semaphore(ENROL_CONCURRENCY)

    async def one(p: Person) -> None:
        async with gate:
            await enrol_one(hub, p)

    async with asyncio.TaskGroup() as group:
        for p in people:
            group.create_task(one(p))


class HubQueryDriver:
    """One full user journey per call; `bank_codes` is every bank of the run."""

    def __init__(
        self,
        hub: AsyncCardLookupClient,
        outbox: OutboxTail,
        face: DevFaceProvider,
        bank_codes: Sequence[str],
        consent_text_version: str,
        changes_only: bool = True,
    ) -> None:
        self._hub = hub
        self._outbox = outbox
        self._face = face
        self._bank_codes = list(bank_codes)
        self._consent_text_version = consent_text_version
        self._changes_only = changes_only
        self.watch_bytes: list[int] = []
        """Serialized bytes of each finished query's WatchQuery stream."""

    async def verify(self, person: Person) -> tuple[str, str, face_pb.FaceAttestation]:
        """StartVerification and the SMS code: (verification id, code, face attestation)."""
        started = await self._hub.start_verification(person.user_id)
        code = await self._outbox.code_for(person.phone)
        attestation = self._face.attest(person.user_id, started.verification_id, dt.datetime.now(dt.UTC))
        return started.verification_id, code, attestation

    async def create(self, person: Person, verified: tuple[str, str, face_pb.FaceAttestation]) -> str:
        verification_id, code, attestation = verified
        query = await self._hub.create_query(
            user_id=person.user_id,
            request_id=uuid.uuid4().hex,
            verification_id=verification_id,
            sms_code=code,
            face_attestation=attestation,
            consent_text_version=self._consent_text_version,
            bank_codes=self._bank_codes,
        )
        return query.query_id

    async def watch(self, person: Person, query_id: str) -> None:
        """WatchQuery until READY (the view the driver was made with); checks
        every bank answered and records the bytes streamed."""
        size = 0
        kept: pb.Query | None = None
        async for message in self._hub.watch_query(person.user_id, query_id, changes_only=self._changes_only):
            size += message.ByteSize()
            if kept is None or not self._changes_only:
                kept = message.query
            else:
                apply_changes(kept, message.query)
            if kept.state == pb.QUERY_STATE_READY:
                break
        else:
            raise RuntimeError("WatchQuery ended before the query was READY")
        self.watch_bytes.append(size)
        answered = sum(1 for b in kept.bank_outcomes if b.state == pb.BANK_OUTCOME_STATE_ANSWERED)
        if answered != len(self._bank_codes):
            raise RuntimeError(f"only {answered} of {len(self._bank_codes)} banks answered")

    async def query(self, person: Person) -> float:
        verified = await self.verify(person)
        t0 = time.perf_counter()
        query_id = await self.create(person, verified)
        await self.watch(person, query_id)
        return time.perf_counter() - t0
