"""The app backend's full journey spread over several hub replicas, moving
to the next replica when one is unreachable (issue 8): what the replica
test and the replica demo drive.

Each journey starts on its "home" replica (round-robin over the journeys)
and sends every step there while it answers; a step that finds its replica
unreachable (`HubUnavailable`) is sent to the next replica. Each step is
safe to send again elsewhere: EnrollUser replaces the user with the same
data, CreateQuery is idempotent on its request_id, WatchQuery and GetReport
with the right password are reads. StartVerification is the exception: a
replica may die after sending the SMS but before answering; then the next
replica refuses with SMS_RATE_LIMITED until the resend interval passes,
and the journey waits for it and asks again (the newest code wins).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.population import Person
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.errors import HubUnavailable, SmsRateLimited
from hub.core.notify import OutboxTail

T = TypeVar("T")

ROUNDS = 40
"""How many times a step goes round every replica before giving up."""
PAUSE_S = 0.25
"""Pause after a step found every replica unreachable in one round."""


class AllReplicasUnavailable(RuntimeError):
    """A step found no replica answering for ROUNDS rounds."""


@dataclass
class JourneyResult:
    person: Person
    query_id: str
    created_on: str
    """The replica whose answer to CreateQuery the journey got."""
    report: pb.Report
    ready: pb.Query
    """The query as the READY message (or read) showed it."""
    moves: list[str] = field(default_factory=list)
    """'step:replica' for each step that had to leave an unreachable replica."""
    watched_on: list[str] = field(default_factory=list)
    """The replicas whose WatchQuery streams followed the query, in order."""
    seconds: float = 0.0
    """CreateQuery sent -> report read."""


class Spread:
    """One client per replica (name -> client), in a fixed order."""

    def __init__(self, clients: dict[str, AsyncCardLookupClient]) -> None:
        if not clients:
            raise ValueError("at least one replica")
        self.clients = clients
        self.names = list(clients)

    def home(self, index: int) -> int:
        return index % len(self.names)

    async def call(
        self, start: int, step: str, fn: Callable[[AsyncCardLookupClient], Awaitable[T]], moves: list[str]
    ) -> tuple[int, T]:
        """Runs `fn` on replica `start`, then the next ones while they are
        unreachable. Returns the index of the replica that answered and its
        answer; other refusals propagate."""
        n = len(self.names)
        for round_ in range(ROUNDS):
            for offset in range(n):
                i = (start + offset) % n
                try:
                    return i, await fn(self.clients[self.names[i]])
                except HubUnavailable:
                    moves.append(f"{step}:{self.names[i]}")
            if round_ < ROUNDS - 1:
                await asyncio.sleep(PAUSE_S)
        raise AllReplicasUnavailable(step)


@dataclass(frozen=True)
class JourneyPlan:
    face: DevFaceProvider
    outbox: OutboxTail
    consent_text_version: str
    resend_interval_s: float = 1.0


async def full_journey(
    spread: Spread, plan: JourneyPlan, home: int, person: Person, banks: Sequence[str]
) -> JourneyResult:
    """Enrol, verify with the SMS code from the outbox, create, watch to
    READY, read the report with the payment password."""
    moves: list[str] = []

    async def enrol(c: AsyncCardLookupClient) -> pb.User:
        return await c.enroll_user(**person.enrolment())

    at, _ = await spread.call(home, "enrol", enrol, moves)
    while True:
        try:
            at, started = await spread.call(at, "verify", lambda c: c.start_verification(person.user_id), moves)
            break
        except SmsRateLimited:
            await asyncio.sleep(plan.resend_interval_s)  # a dead replica's SMS went out; ask again
    code = await plan.outbox.code_for(person.phone)
    attestation = plan.face.attest(person.user_id, started.verification_id, dt.datetime.now(dt.UTC))
    request_id = uuid.uuid4().hex
    t0 = time.perf_counter()

    async def create(c: AsyncCardLookupClient) -> pb.Query:
        return await c.create_query(
            user_id=person.user_id,
            request_id=request_id,
            verification_id=started.verification_id,
            sms_code=code,
            face_attestation=attestation,
            consent_text_version=plan.consent_text_version,
            bank_codes=list(banks),
        )

    at, query = await spread.call(at, "create", create, moves)
    created_on = spread.names[at]
    watched_on: list[str] = []

    async def until_ready(c: AsyncCardLookupClient) -> pb.Query:
        watched_on.append(next(name for name, client in spread.clients.items() if client is c))
        async for message in c.watch_query(person.user_id, query.query_id):
            if message.query.state == pb.QUERY_STATE_READY:
                return message.query
        raise RuntimeError("WatchQuery ended before the query was READY")

    at, ready = await spread.call(at, "watch", until_ready, moves)

    async def report(c: AsyncCardLookupClient) -> pb.Report:
        return await c.get_report(person.user_id, query.query_id, person.payment_password)

    at, got = await spread.call(at, "report", report, moves)
    return JourneyResult(person, query.query_id, created_on, got, ready, moves, watched_on, time.perf_counter() - t0)
