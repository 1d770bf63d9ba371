"""Issue 9 item 5: SMS abuse and misleading answers. No code is sent to a
user who cannot create a query now; the SMS limits are per person and per
phone (not per app account) with a daily cap per phone; GetUser tells the
truth during the cooldown; the cooldown error names the configured
duration and a retry_time at which a retry is accepted."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.core.config import HubConfig, Timings
from hub.core.notify import read_outbox
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.helpers import HubHarness, refused


def when_text(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


@pytest.fixture
def hub_with(pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path) -> object:
    @contextlib.asynccontextmanager
    async def start(**timings: object) -> AsyncIterator[HubHarness]:
        config = HubConfig.dev(
            pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", timings=dataclasses.replace(FAST, **timings)
        )
        server = await start_hub(config, clock)
        try:
            async with AsyncCardLookupClient(client_options(pki, server.port)) as client:
                face = DevFaceProvider.from_file(pki.face_provider_key)
                yield HubHarness(client, server, fleet, clock, population, tmp_path / "sms-outbox.jsonl", face)
        finally:
            await server.stop(grace=0)

    return start


def codes_sent(hub: HubHarness) -> int:
    return sum(1 for m in read_outbox(hub.outbox) if m["kind"] == "VERIFICATION_CODE")


async def test_no_sms_while_a_query_is_in_progress(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    hub.fleet.set_faults("103", Faults(down=True))
    query = await hub.create(person, ["102", "103"])
    hub.clock.advance(dt.timedelta(minutes=2))
    sent = codes_sent(hub)
    error = await refused("QUERY_IN_PROGRESS", hub.client.start_verification(person.user_id))
    assert error.metadata["query_id"] == query.query_id
    assert codes_sent(hub) == sent
    user = await hub.client.get_user(person.user_id)
    assert not user.eligible and user.ineligible_reason == "QUERY_IN_PROGRESS"


async def test_cooldown_no_sms_get_user_truthful_configured_duration_exact_retry(hub_with: object) -> None:
    async with hub_with(cooldown=dt.timedelta(hours=36)) as hub:  # type: ignore[operator]
        person = hub.eligible()
        await hub.enrol(person)
        await hub.ready_query(person, ["102"])
        hub.clock.advance(dt.timedelta(hours=1))
        sent = codes_sent(hub)
        error = await refused("COOLDOWN_ACTIVE", hub.client.start_verification(person.user_id))
        assert codes_sent(hub) == sent, "an SMS code was sent to a user in the cooldown"
        assert "36 hours" in error.message and "7 days" not in error.message
        retry = when_text(error.metadata["retry_time"])
        user = await hub.client.get_user(person.user_id)
        assert not user.eligible and user.ineligible_reason == "COOLDOWN_ACTIVE"
        assert user.eligible_time.ToDatetime(tzinfo=dt.UTC) == retry
        # A client that retries exactly at retry_time is accepted.
        hub.clock.set(retry)
        assert (await hub.client.get_user(person.user_id)).eligible
        second = await hub.create(person, ["102"])
        assert second.query_id


async def test_sms_resend_interval_is_per_person_and_per_phone(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible(3)
    other = harness.eligible(4)
    twin = dataclasses.replace(person, user_id=person.user_id + "-second-account")
    same_phone = dataclasses.replace(other, phone=person.phone)
    for p in (person, twin, same_phone):
        await hub.enrol(p)
    await hub.client.start_verification(person.user_id)
    sent = codes_sent(hub)
    for account in (twin, same_phone):  # another account of the person; another person on that phone
        error = await refused("SMS_RATE_LIMITED", hub.client.start_verification(account.user_id))
        assert error.metadata["limit"] == "resend"
    assert codes_sent(hub) == sent
    hub.clock.advance(FAST.sms_resend_interval)
    await hub.client.start_verification(twin.user_id)
    assert codes_sent(hub) == sent + 1


async def test_daily_cap_per_phone(hub_with: object) -> None:
    async with hub_with(sms_daily_cap_per_phone=3) as hub:  # type: ignore[operator]
        person = hub.eligible()
        await hub.enrol(person)
        first = hub.clock.now()
        for _ in range(3):
            await hub.client.start_verification(person.user_id)
            hub.clock.advance(dt.timedelta(minutes=5))
        error = await refused("SMS_RATE_LIMITED", hub.client.start_verification(person.user_id))
        assert error.metadata["limit"] == "daily"
        retry = when_text(error.metadata["retry_time"])
        assert first + dt.timedelta(hours=24) <= retry < first + dt.timedelta(hours=24, seconds=1)
        assert codes_sent(hub) == 3
        hub.clock.set(retry)
        await hub.client.start_verification(person.user_id)
        assert codes_sent(hub) == 4


def test_the_daily_cap_is_configurable_with_a_sensible_default() -> None:
    assert 3 <= Timings().sms_daily_cap_per_phone <= 20
