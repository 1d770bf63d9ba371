"""Retention limits (issue 22): each item the hub keeps past R11 is deleted
by the sweeper once its configured period is over, and not before, on both
stores. The periods differ so that each item's deadline is tested alone;
the clock is the hub's injected one."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import HubConfig
from hub.core.notify import read_outbox
from tests import stores
from tests.api.conftest import FAST, served_harness
from tests.api.helpers import HubHarness, closure_of
from tests.api.test_account_closure import FAST_BANKS, SLOW_BANK, tracked_query

pytestmark = pytest.mark.both_stores

DAY = dt.timedelta(days=1)
RETENTION = dataclasses.replace(
    FAST,
    sweep_interval=dt.timedelta(hours=1),  # the test sweeps itself
    abuse_counter_retention=2 * DAY,
    sms_outbox_retention=3 * DAY,
    closure_record_retention=8 * DAY,
    access_event_retention=20 * DAY,
    card_case_retention=25 * DAY,
    lookup_history_retention=30 * DAY,
    card_record_retention=40 * DAY,
)


@pytest.fixture
async def kept(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    config = HubConfig.dev(
        pki,
        fleet.addresses,
        tmp_path,
        listen="127.0.0.1:0",
        timings=RETENTION,
        database=stores.database_for(tmp_path),
    )
    async with served_harness(config, pki, population, fleet, clock) as served:
        yield served


async def test_each_kept_item_disappears_after_its_period(kept: HubHarness) -> None:
    hub = kept
    start = hub.clock.now()
    a, b = hub.eligible(0), hub.eligible(1)
    await hub.enrol(a)
    await hub.enrol(b)
    query = await tracked_query(hub, a, (*FAST_BANKS, SLOW_BANK))
    await hub.until_ready(a, query.query_id)
    report = await hub.client.get_report(a.user_id, query.query_id, a.payment_password)
    await hub.client.flag_card(a.user_id, query.query_id, a.payment_password, report.cards[0].card_id)
    await hub.ready_query(b, FAST_BANKS)
    await hub.client.delete_user(b.user_id, b.payment_password)

    async def rows(table: str) -> int:
        row = await hub.server.db.fetch_one(f"SELECT COUNT(*) FROM {table}")
        return int(row[0]) if row else 0

    async def history() -> int:
        """The queries, their bank outcomes and CreateQuery request ids."""
        counts = [await rows(t) for t in ("queries", "bank_tasks", "query_requests")]
        assert all(counts) or not any(counts), counts  # all go together
        return sum(counts)

    async def outbox() -> int:
        return len(read_outbox(hub.outbox))

    items: list[tuple[str, dt.timedelta, Callable[[], Awaitable[int]]]] = [
        ("abuse counters", RETENTION.abuse_counter_retention, lambda: rows("verifications")),
        ("SMS outbox", RETENTION.sms_outbox_retention, outbox),
        ("closure record", RETENTION.closure_record_retention, lambda: rows("closed_accounts")),
        ("access events", RETENTION.access_event_retention, lambda: rows("report_access_events")),
        ("card cases", RETENTION.card_case_retention, lambda: rows("card_cases")),
        ("lookup history", RETENTION.lookup_history_retention, history),
        ("new-card records", RETENTION.card_record_retention, lambda: rows("card_records")),
    ]
    closure = closure_of(hub)
    for name, period, count in items:
        hub.clock.set(start + period - dt.timedelta(minutes=10))
        await hub.server.engine.sweep_expired()
        await closure.sweep()
        assert await count() > 0, f"{name} deleted before {period}"
        hub.clock.set(start + period + dt.timedelta(minutes=10))
        await hub.server.engine.sweep_expired()
        await closure.sweep()
        assert await count() == 0, f"{name} kept after {period}"
    # The person who stays is still enrolled: only what ages out goes.
    assert (await hub.client.get_user(a.user_id)).user_id == a.user_id
