"""Idempotent CreateQuery, paginated history, and the WatchQuery stream."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from cardlookup.hub.v1 import resources_pb2 as pb
from tests.api.helpers import HubHarness, refused

pytestmark = pytest.mark.both_stores


async def test_create_is_idempotent_on_request_id(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    vid, code = await hub.verify(person)
    face = hub.face.attest(person.user_id, vid, hub.clock.now())
    version = (await hub.client.list_banks(person.user_id)).consent_text_version
    request_id = uuid.uuid4().hex

    async def create(banks: list[str]) -> pb.Query:
        return await hub.client.create_query(
            user_id=person.user_id,
            request_id=request_id,
            verification_id=vid,
            sms_code=code,
            face_attestation=face,
            consent_text_version=version,
            bank_codes=banks,
        )

    first = await create(["102", "104"])
    again = await create(["102", "104"])
    assert again.query_id == first.query_id
    await refused("REQUEST_ID_REUSED", create(["102"]))
    history = (await hub.client.list_queries(person.user_id)).queries
    assert [q.query_id for q in history] == [first.query_id]


async def test_history_is_paginated_newest_first(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible(1)
    await hub.enrol(person)
    made = []
    for _ in range(3):
        query = await hub.ready_query(person, ["102"])
        made.append(query.query_id)
        hub.clock.advance(dt.timedelta(days=7, minutes=1))
    first = await hub.client.list_queries(person.user_id, page_size=2)
    assert [q.query_id for q in first.queries] == made[::-1][:2]
    assert first.next_page_token
    second = await hub.client.list_queries(person.user_id, page_size=2, page_token=first.next_page_token)
    assert [q.query_id for q in second.queries] == made[::-1][2:]
    assert second.next_page_token == ""
    every = [q.query_id async for q in hub.client.iter_queries(person.user_id, page_size=1)]
    assert every == made[::-1]
    # Older than 7 days: the earlier reports show as expired (R11).
    assert [q.state for q in first.queries] == [pb.QUERY_STATE_EXPIRED] * 2
    error = await refused("INVALID_FIELD", hub.client.list_queries(person.user_id, page_token="bogus"))
    assert error.metadata["field"] == "page_token"
    await refused("INVALID_FIELD", hub.client.list_queries(person.user_id, page_size=101))
    other = harness.eligible(2)
    await hub.enrol(other)
    await refused("INVALID_FIELD", hub.client.list_queries(other.user_id, page_token=first.next_page_token))
    await refused("QUERY_NOT_FOUND", hub.client.get_query(other.user_id, made[0]))


async def test_watch_streams_one_event_per_bank_then_ends_ready(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    banks = ["102", "103", "104", "105", "301"]
    query = await hub.create(person, banks)
    messages = [m async for m in hub.client.watch_query(person.user_id, query.query_id)]
    assert messages[-1].query.state == pb.QUERY_STATE_READY
    # The final message names no bank when its last bank was already reported.
    changed = [m.changed_bank_code for m in messages[1:] if m.changed_bank_code]
    first_pending = [o.bank_code for o in messages[0].query.bank_outcomes if o.state == pb.BANK_OUTCOME_STATE_PENDING]
    assert messages[0].changed_bank_code == "" or messages[0].query.state == pb.QUERY_STATE_READY
    assert sorted(changed) == sorted(first_pending)
    for message in messages:
        done = [o for o in message.query.bank_outcomes if o.state != pb.BANK_OUTCOME_STATE_PENDING]
        if message.changed_bank_code:
            assert message.changed_bank_code in {o.bank_code for o in done}
    assert all(o.state == pb.BANK_OUTCOME_STATE_ANSWERED for o in messages[-1].query.bank_outcomes)
    # A finished query's watch is its snapshot alone.
    again = [m async for m in hub.client.watch_query(person.user_id, query.query_id)]
    assert len(again) == 1 and again[0].query.state == pb.QUERY_STATE_READY
    await refused("QUERY_NOT_FOUND", _drain(hub, person.user_id, str(uuid.uuid4())))
    await refused("INVALID_FIELD", hub.client.get_query(person.user_id, "not-a-uuid"))


async def _drain(hub: HubHarness, user_id: str, query_id: str) -> None:
    async for _ in hub.client.watch_query(user_id, query_id):
        pass
