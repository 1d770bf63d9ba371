"""Idempotency and one-query-at-a-time under concurrent CreateQuery calls."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid

import pytest

from cardlookup.hub.v1 import resources_pb2 as pb
from client.errors import CardLookupError
from tests.api.helpers import HubHarness

pytestmark = pytest.mark.both_stores

BANKS = ["102", "103", "104"]


async def test_the_same_request_sent_five_times_at_once_is_one_query(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    vid, code = await hub.verify(person)
    face = hub.face.attest(person.user_id, vid, hub.clock.now())
    version = (await hub.client.list_banks(person.user_id)).consent_text_version
    request_id = uuid.uuid4().hex

    async def create() -> pb.Query:
        return await hub.client.create_query(
            user_id=person.user_id,
            request_id=request_id,
            verification_id=vid,
            sms_code=code,
            face_attestation=face,
            consent_text_version=version,
            bank_codes=BANKS,
        )

    queries = await asyncio.gather(*(create() for _ in range(5)))
    assert len({q.query_id for q in queries}) == 1
    await hub.until_ready(person, queries[0].query_id)
    assert [hub.fleet.call_count(c) for c in BANKS] == [1, 1, 1]
    assert len((await hub.client.list_queries(person.user_id)).queries) == 1


async def test_two_request_ids_at_once_accept_exactly_one(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible(1)
    await hub.enrol(person)
    vid, code = await hub.verify(person)
    face = hub.face.attest(person.user_id, vid, hub.clock.now())
    version = (await hub.client.list_banks(person.user_id)).consent_text_version
    # The second request's own verification, sent one resend interval later.
    hub.clock.advance(dt.timedelta(minutes=1))
    vid2, code2 = await hub.verify(person)
    face2 = hub.face.attest(person.user_id, vid2, hub.clock.now())

    async def create(verification_id: str, sms_code: str, attestation: object) -> pb.Query | CardLookupError:
        try:
            return await hub.client.create_query(
                user_id=person.user_id,
                request_id=uuid.uuid4().hex,
                verification_id=verification_id,
                sms_code=sms_code,
                face_attestation=attestation,  # type: ignore[arg-type]
                consent_text_version=version,
                bank_codes=BANKS,
            )
        except CardLookupError as e:
            return e

    results = await asyncio.gather(create(vid, code, face), create(vid2, code2, face2))
    accepted = [r for r in results if isinstance(r, pb.Query)]
    refused = [r for r in results if isinstance(r, CardLookupError)]
    assert len(accepted) == 1 and len(refused) == 1
    # The loser sees the winner still running, or (on a loaded machine, if the
    # winner's three banks all answered first) already in its cooldown.
    assert refused[0].reason in ("QUERY_IN_PROGRESS", "COOLDOWN_ACTIVE")
    if refused[0].reason == "QUERY_IN_PROGRESS":
        assert refused[0].metadata["query_id"] == accepted[0].query_id
    else:
        assert "retry_time" in refused[0].metadata
    await hub.until_ready(person, accepted[0].query_id)
    assert [hub.fleet.call_count(c) for c in BANKS] == [1, 1, 1]


async def test_two_accounts_of_one_person_at_once_accept_exactly_one(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible(2)
    twin = dataclasses.replace(person, user_id=person.user_id + "-second-account")
    await hub.enrol(person)
    await hub.enrol(twin)
    requests = []
    for account in (person, twin):
        vid, code = await hub.verify(account)
        requests.append((account, vid, code, hub.face.attest(account.user_id, vid, hub.clock.now())))
        # The SMS resend interval is per person, not per account.
        hub.clock.advance(dt.timedelta(seconds=61))
    version = (await hub.client.list_banks(person.user_id)).consent_text_version

    async def create(account: object, vid: str, code: str, face: object) -> pb.Query | CardLookupError:
        try:
            return await hub.client.create_query(
                user_id=account.user_id,  # type: ignore[attr-defined]
                request_id=uuid.uuid4().hex,
                verification_id=vid,
                sms_code=code,
                face_attestation=face,  # type: ignore[arg-type]
                consent_text_version=version,
                bank_codes=BANKS,
            )
        except CardLookupError as e:
            return e

    results = await asyncio.gather(*(create(*r) for r in requests))
    # As above: the loser sees the winner running, or already in its cooldown.
    assert sorted(type(r).__name__ for r in results) in (
        ["Query", "QueryInProgress"],
        ["CooldownActive", "Query"],
    )
