"""Journey rules (docs/rules.md) on the fake engine: what CreateQuery,
StartVerification, GetUser, ListQueries and GetReport decide, without a
bank, a server or a port. The same rules run end to end in tests/api."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json

import pytest

from cardlookup.population import Person, Population
from hub.core.domain import QueryState
from hub.identity.errors import RuleViolation
from tests.unit.journey_kit import BANKS, JourneyKit


async def test_r12_one_query_at_a_time_refuses_before_any_sms(kit: JourneyKit, person: Person) -> None:
    await kit.enrol(person)
    first = await kit.create(person.user_id, "r1")
    sent = len(kit.sms.messages)
    with pytest.raises(RuleViolation) as refused:
        await kit.journey.start_verification(person.user_id)
    assert refused.value.reason == "QUERY_IN_PROGRESS"
    assert refused.value.metadata == {"query_id": first.record.query_id}
    assert len(kit.sms.messages) == sent  # no code an abuser could use
    assert (await kit.journey.get_user(person.user_id)).ineligible_reason == "QUERY_IN_PROGRESS"
    assert len(kit.engine.submitted) == 1


async def test_r12_cooldown_ends_exactly_seven_days_after_the_report(kit: JourneyKit, person: Person) -> None:
    await kit.enrol(person)
    first = await kit.create(person.user_id, "r1")
    kit.clock.advance(dt.timedelta(minutes=3, microseconds=250))
    ready = await kit.engine.finish(first.record.query_id)
    assert ready.ready_time is not None
    ends = (ready.ready_time + dt.timedelta(days=7)).replace(microsecond=0) + dt.timedelta(seconds=1)
    kit.clock.advance(dt.timedelta(days=6, hours=23))
    with pytest.raises(RuleViolation) as refused:
        await kit.journey.start_verification(person.user_id)
    assert refused.value.reason == "COOLDOWN_ACTIVE"
    assert refused.value.metadata["retry_time"] == ends.isoformat().replace("+00:00", "Z")
    assert refused.value.retry_delay == ends - kit.clock.now()
    user = await kit.journey.get_user(person.user_id)
    assert (user.ineligible_reason, user.eligible_time) == ("COOLDOWN_ACTIVE", ends)
    kit.clock.set(ends)
    second = await kit.create(person.user_id, "r2")
    assert second.record.query_id != first.record.query_id
    assert len(kit.engine.submitted) == 2


async def test_r3_only_banks_of_the_registry_and_the_current_notice(kit: JourneyKit, person: Person) -> None:
    await kit.enrol(person)
    with pytest.raises(RuleViolation) as refused:
        await kit.create(person.user_id, "r1", banks=(*BANKS[:1], "999"))
    assert (refused.value.reason, refused.value.metadata) == ("BANK_NOT_AVAILABLE", {"bank_code": "999"})
    kit.clock.advance(dt.timedelta(minutes=2))  # past the SMS resend interval
    started, _ = await kit.journey.start_verification(person.user_id)
    request = kit.request(person.user_id, started.verification_id, "r2")
    with pytest.raises(RuleViolation) as mismatch:
        await kit.journey.create_query(dataclasses.replace(request, consent_text_version="an-older-notice"))
    assert mismatch.value.reason == "CONSENT_VERSION_MISMATCH"
    assert mismatch.value.metadata == {"current_version": kit.config.consent_text_version}
    assert kit.engine.submitted == []  # nothing reached a bank (R4)


async def test_a_repeated_request_id_replays_the_query_and_refuses_other_content(
    kit: JourneyKit, person: Person
) -> None:
    await kit.enrol(person)
    started, _ = await kit.journey.start_verification(person.user_id)
    request = kit.request(person.user_id, started.verification_id, "r1")
    first = await kit.journey.create_query(request)
    again = await kit.journey.create_query(request)
    assert again.record == first.record
    assert len(kit.engine.submitted) == 1
    with pytest.raises(RuleViolation) as reused:
        await kit.journey.create_query(dataclasses.replace(request, bank_codes=BANKS[:1]))
    assert reused.value.reason == "REQUEST_ID_REUSED"


async def test_r9_one_ready_sms_per_query_even_when_the_engine_repeats(kit: JourneyKit, person: Person) -> None:
    await kit.enrol(person)
    view = await kit.create(person.user_id, "r1")
    ready = await kit.engine.finish(view.record.query_id)
    await kit.journey.notify_ready(ready)  # the engine re-runs listeners after a restart
    notices = [m for m in kit.sms.messages if m.kind == "REPORT_READY"]
    assert [m.phone for m in notices] == [person.phone]


async def test_r10_r11_the_report_needs_the_password_and_is_gone_after_seven_days(
    kit: JourneyKit, person: Person
) -> None:
    await kit.enrol(person)
    query_id = (await kit.create(person.user_id, "r1")).record.query_id
    with pytest.raises(RuleViolation) as early:
        await kit.journey.get_report(person.user_id, query_id, person.payment_password)
    assert (early.value.reason, early.value.metadata) == ("REPORT_NOT_READY", {"state": "RUNNING"})
    ready = await kit.engine.finish(query_id)
    wrong = "000000" if person.payment_password != "000000" else "111111"
    with pytest.raises(RuleViolation) as refused:
        await kit.journey.get_report(person.user_id, query_id, wrong)
    assert refused.value.reason == "PAYMENT_PASSWORD_WRONG"
    report = await kit.journey.get_report(person.user_id, query_id, person.payment_password)
    assert report.query_id == query_id
    events = (await kit.journey.get_query(person.user_id, query_id)).access_events
    assert len(events) == 2  # the refused and the granted access, both recorded
    assert ready.report_expire_time is not None
    kit.clock.set(ready.report_expire_time)
    view = await kit.journey.get_query(person.user_id, query_id)
    assert view.state is QueryState.EXPIRED and view.record.state is QueryState.READY  # before any sweeper
    with pytest.raises(RuleViolation) as gone:
        await kit.journey.get_report(person.user_id, query_id, person.payment_password)
    assert gone.value.reason == "REPORT_EXPIRED"
    assert gone.value.metadata["expire_time"] == ready.report_expire_time.isoformat().replace("+00:00", "Z")


async def test_another_users_query_is_not_found(kit: JourneyKit, population: Population) -> None:
    owner, other = population.eligible_people(kit.clock.now().date())[:2]
    await kit.enrol(owner)
    await kit.enrol(other)
    query_id = (await kit.create(owner.user_id, "r1")).record.query_id
    for read in (
        kit.journey.get_query(other.user_id, query_id),
        kit.journey.get_report(other.user_id, query_id, other.payment_password),
    ):
        with pytest.raises(RuleViolation) as refused:
            await read
        assert refused.value.reason == "QUERY_NOT_FOUND"
    for user_id, watched in ((other.user_id, query_id), (owner.user_id, "no-such-query")):
        with pytest.raises(RuleViolation) as refused:
            async for _ in kit.journey.watch(user_id, watched):
                raise AssertionError("a watch of a query that is not the user's yielded a snapshot")
        assert refused.value.reason == "QUERY_NOT_FOUND"
    watch = kit.journey.watch(owner.user_id, query_id)
    view, _ = await anext(watch)  # the owner's watch opens with its snapshot
    await watch.aclose()
    assert view.record.query_id == query_id


async def test_pages_go_back_in_time_and_a_zoneless_token_is_an_invalid_field(kit: JourneyKit, person: Person) -> None:
    await kit.enrol(person)
    made = []
    for n in range(3):
        view = await kit.create(person.user_id, f"r{n}")
        await kit.engine.finish(view.record.query_id)
        made.append(view.record.query_id)
        kit.clock.advance(dt.timedelta(days=7, seconds=1))
    first = await kit.journey.list_queries(person.user_id, 2, "")
    second = await kit.journey.list_queries(person.user_id, 2, first.next_page_token)
    assert [v.record.query_id for v in (*first.queries, *second.queries)] == made[::-1]
    assert second.next_page_token == ""
    raw = json.loads(base64.urlsafe_b64decode(first.next_page_token))
    raw["t"] = raw["t"].replace("+00:00", "")
    zoneless = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode()
    with pytest.raises(RuleViolation) as refused:
        await kit.journey.list_queries(person.user_id, 2, zoneless)
    assert (refused.value.reason, refused.value.metadata.get("field")) == ("INVALID_FIELD", "page_token")


async def test_r2_a_closed_region_may_not_start(kit: JourneyKit, population: Population) -> None:
    day = kit.clock.now().date()
    open_ids = {p.user_id for p in population.eligible_people(day)}
    closed = next(p for p in population.people if p.user_id not in open_ids and p.id_valid_on(day))
    await kit.enrol(closed)
    with pytest.raises(RuleViolation) as refused:
        await kit.journey.start_verification(closed.user_id)
    assert refused.value.reason == "REGION_NOT_OPEN"
    assert kit.sms.messages == []


async def test_a_watch_shows_the_query_running_then_ready(kit: JourneyKit, person: Person) -> None:
    await kit.enrol(person)
    query_id = (await kit.create(person.user_id, "r1")).record.query_id
    seen: list[QueryState] = []
    first = asyncio.Event()

    async def follow() -> None:
        async for view, _bank in kit.journey.watch(person.user_id, query_id):
            seen.append(view.state)
            first.set()

    watcher = asyncio.create_task(follow())
    await first.wait()
    await kit.engine.finish(query_id)
    await watcher
    assert seen == [QueryState.RUNNING, QueryState.READY]
