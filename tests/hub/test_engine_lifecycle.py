"""Expiry (R11), ready listeners, recovery, graceful stop, and privacy of
everything the engine writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
from pathlib import Path

import pytest

from bank_sim.faults import Faults, Misbehaviour
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import HubConfig
from hub.core.domain import BankState, QueryRecord, QueryState, ReportUnavailable
from hub.core.logging import configure_logging
from hub.store.db import open_database
from tests import stores
from tests.hub.helpers import (
    assert_report_is_ground_truth,
    fleet_config,
    hub_config,
    new_query,
    rich_person,
    running_engine,
    running_fleet,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.both_stores

CODES = list(DEFAULT_BANK_CODES)


async def test_report_expires_after_seven_days_and_is_destroyed(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:3]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    async with (
        running_fleet(fleet_config(pki, population, clock, codes)) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        query = new_query(person, codes)
        with pytest.raises(KeyError):
            await engine.read_report(query.query_id)
        await engine.submit(query)
        ready = await wait_for(engine, query.query_id)
        assert await engine.latest_ready_time(person.user_id) == ready.ready_time
        assert ready.report_expire_time is not None
        clock.advance(dt.timedelta(days=7) - dt.timedelta(seconds=1))
        assert await engine.sweep_expired() == 0
        await engine.read_report(query.query_id)
        clock.advance(dt.timedelta(seconds=1))
        # Past R11 the report is unreadable even before the sweeper runs.
        with pytest.raises(ReportUnavailable) as unavailable:
            await engine.read_report(query.query_id)
        assert unavailable.value.state == QueryState.EXPIRED
        assert await engine.sweep_expired() == 1
        assert await engine.sweep_expired() == 0
        record = await engine.get(query.query_id)
        assert record is not None and record.state == QueryState.EXPIRED
        assert [b.state for b in record.banks] == [BankState.ANSWERED] * 3  # the record stays
        with pytest.raises(ReportUnavailable) as unavailable:
            await engine.read_report(query.query_id)
        assert unavailable.value.state == QueryState.EXPIRED
        assert unavailable.value.expire_time == ready.report_expire_time
        events = [e async for e in engine.watch(query.query_id)]
        assert len(events) == 1 and events[0].query.state == QueryState.EXPIRED
    db = await open_database(stores.database_for(tmp_path))
    for sql in (
        "SELECT COUNT(*) FROM reports",
        "SELECT COUNT(*) FROM queries WHERE subject_key IS NOT NULL",
        "SELECT COUNT(*) FROM bank_tasks WHERE answer_key IS NOT NULL",
    ):
        row = await db.fetch_one(sql)
        assert row is not None and row[0] == 0, sql
    await db.close()


async def test_report_not_ready_yet_is_unavailable(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:2]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    faults = {codes[0]: Faults(down=True)}
    async with (
        running_fleet(fleet_config(pki, population, clock, codes, faults)) as fleet,
        running_engine(hub_config(pki, fleet.addresses, tmp_path), clock) as engine,
    ):
        query = new_query(person, codes)
        await engine.submit(query)
        await wait_for(engine, query.query_id, QueryState.RUNNING)
        with pytest.raises(ReportUnavailable) as unavailable:
            await engine.read_report(query.query_id)
        assert unavailable.value.state == QueryState.RUNNING
        unfinished = await engine.unfinished_for_user(person.user_id)
        assert unfinished is not None and unfinished.query_id == query.query_id


async def test_submit_rejects_a_query_the_engine_cannot_run(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = population.people[0]
    config = hub_config(pki, {"102": "127.0.0.1:1"}, tmp_path)
    async with running_engine(config, clock, run_fanout=False) as engine:
        for codes in ([], ["102", "102"], ["999"]):
            with pytest.raises(ValueError):
                await engine.submit(new_query(person, codes))
        assert await engine.list_for_user(person.user_id, 10) == []


async def test_history_is_paginated_newest_first(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = population.people[0]
    config = hub_config(pki, {"102": "127.0.0.1:1"}, tmp_path)
    async with running_engine(config, clock, run_fanout=False) as engine:
        ids = []
        for _ in range(5):
            ids.append((await engine.submit(new_query(person, ["102"]))).query_id)
            clock.advance(dt.timedelta(minutes=1))
        await engine.submit(new_query(population.people[1], ["102"]))
        page1 = await engine.list_for_user(person.user_id, 2)
        assert [r.query_id for r in page1] == ids[::-1][:2]
        page2 = await engine.list_for_user(person.user_id, 2, (page1[-1].create_time, page1[-1].query_id))
        page3 = await engine.list_for_user(person.user_id, 2, (page2[-1].create_time, page2[-1].query_id))
        assert [r.query_id for r in page2 + page3] == ids[::-1][2:]


async def test_ready_listeners_run_once_and_are_durable(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:2]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    calls: list[str] = []

    async def failing(record: QueryRecord) -> None:
        calls.append(f"fail:{record.query_id}")
        raise RuntimeError("SMS gateway down")

    async def working(record: QueryRecord) -> None:
        assert record.state == QueryState.READY
        calls.append(record.query_id)

    async with running_fleet(fleet_config(pki, population, clock, codes)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        query = new_query(person, codes)
        async with running_engine(config, clock) as engine:
            engine.add_ready_listener(failing)
            await engine.submit(query)
            await wait_for(engine, query.query_id)
            await wait_until(lambda: calls)
        assert calls == [f"fail:{query.query_id}"]
        async with running_engine(config, clock) as engine:  # not recorded: re-run on start
            engine.add_ready_listener(working)
            await wait_until(lambda: len(calls) == 2)
        assert calls[1] == query.query_id
        async with running_engine(config, clock) as engine:  # recorded: not re-run
            engine.add_ready_listener(working)
            record = await engine.get(query.query_id)
        assert len(calls) == 2 and record is not None and record.state == QueryState.READY


async def test_a_window_that_closed_before_any_call_says_so(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    """Issue 9: `REPORT_WINDOW_CLOSED:<last error>` always carries a last
    error; a bank never called (the hub was down the whole window) says
    NOT_CALLED, and no call is made after the window."""
    codes = CODES[:2]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    async with running_fleet(fleet_config(pki, population, clock, codes)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        query = new_query(person, codes)
        async with running_engine(config, clock, run_fanout=False) as engine:
            await engine.submit(query)  # accepted, then the hub is down for 24 hours
        clock.advance(dt.timedelta(hours=24, seconds=1))
        async with running_engine(config, clock) as engine:
            record = await wait_for(engine, query.query_id)
        assert [(b.state, b.reason) for b in record.banks] == [
            (BankState.NOT_ANSWERED, "REPORT_WINDOW_CLOSED:NOT_CALLED")
        ] * 2
        assert all(fleet.call_count(c) == 0 for c in codes)
        assert [b.attempt_count for b in record.banks] == [0, 0]  # issue 21: counts calls made, and none was


async def test_unfinished_queries_resume_on_start(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:5]
    person = rich_person(population, clock.now().date(), codes, min_banks=2)
    async with running_fleet(fleet_config(pki, population, clock, codes)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        query = new_query(person, codes)
        async with running_engine(config, clock, run_fanout=False) as engine:
            accepted = await engine.submit(query)
        assert accepted.state == QueryState.ACCEPTED
        assert sum(fleet.call_count(c) for c in codes) == 0  # durable, nothing sent
        async with running_engine(config, clock) as engine:
            await wait_for(engine, query.query_id)
            assert_report_is_ground_truth(await engine.read_report(query.query_id), population, person, codes)
        assert [fleet.call_count(c) for c in codes] == [1] * 5


async def test_graceful_stop_keeps_progress_and_a_restart_completes_without_duplicates(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:6]
    person = rich_person(population, clock.now().date(), codes, min_banks=3)
    stalled = codes[:2]
    faults = {c: Faults(stall_after_cards=0) for c in stalled}
    async with running_fleet(fleet_config(pki, population, clock, codes, faults)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        query = new_query(person, codes)
        async with running_engine(config, clock) as engine:
            await engine.submit(query)
            await wait_until(lambda: all(fleet.call_count(c) == 1 for c in codes))

            async def others_final() -> None:
                async for event in engine.watch(query.query_id):
                    if sum(b.state != BankState.PENDING for b in event.query.banks) == 4:
                        return

            await others_final()
        # stop() gave the stalled streams its grace, then cancelled them.
        stopped = await _record(config, clock, query.query_id)
        assert [b.state for b in stopped.banks[:2]] == [BankState.PENDING] * 2
        assert all(b.state == BankState.ANSWERED for b in stopped.banks[2:])
        for c in stalled:
            fleet.set_faults(c, Faults())
        async with running_engine(config, clock) as engine:
            await wait_for(engine, query.query_id)
            report = await engine.read_report(query.query_id)
        assert_report_is_ground_truth(report, population, person, codes)
        # Only the unfinished banks were asked again.
        assert [fleet.call_count(c) for c in codes] == [2, 2, 1, 1, 1, 1]


async def _record(config: HubConfig, clock: ManualClock, query_id: str) -> QueryRecord:
    async with running_engine(config, clock, run_fanout=False) as engine:
        record = await engine.get(query_id)
    assert record is not None
    return record


async def test_nothing_personal_in_the_database_or_the_logs(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES
    people = population.eligible_people(clock.now().date())[:6]
    misbehaving = {codes[0]: Faults(misbehaviour=Misbehaviour.FULL_CARD_NUMBER)}
    logs = io.StringIO()
    configure_logging("DEBUG", logs)
    try:
        async with running_fleet(fleet_config(pki, population, clock, codes, misbehaving)) as fleet:
            config = hub_config(pki, fleet.addresses, tmp_path)
            async with running_engine(config, clock) as engine:
                queries = [new_query(p, codes) for p in people]
                for q in queries:
                    await engine.submit(q)
                for q in queries:
                    await wait_for(engine, q.query_id)
                    await engine.read_report(q.query_id)
                # Scan before a clean close checkpoints the SQLite WAL away.
                stored = await stores.stored_bytes(tmp_path)
    finally:
        logging.getLogger("hub").handlers.clear()
    assert len(stored) > 100_000  # the run's pages really are in what was scanned
    text = logs.getvalue()
    assert "bank_final" in text and "FULL_CARD_NUMBER" in text  # the logs did record the run
    secrets: list[str] = []
    for person in people:
        secrets += [person.id_number, person.full_name, person.phone]
        for code in codes:
            secrets += [card.number for card in population.cards_at(code, person.id_number)]
    assert len(secrets) > 3 * len(people)
    for secret in secrets:
        assert secret.encode() not in stored, "personal data in the database file"
        assert secret not in text, "personal data in the logs"


async def test_shutdown_during_stream_leaves_no_task_behind(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:2]
    person = rich_person(population, clock.now().date(), codes, min_banks=1)
    faults = {codes[0]: Faults(stall_after_cards=0)}
    async with running_fleet(fleet_config(pki, population, clock, codes, faults)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        config = dataclasses.replace(
            config, timings=dataclasses.replace(config.timings, attempt_timeout=dt.timedelta(seconds=60))
        )
        async with running_engine(config, clock) as engine:
            await engine.submit(new_query(person, codes))
            await wait_until(lambda: fleet.call_count(codes[0]) == 1)
            await engine.stop(grace=0.1)
            assert engine.lanes.running() == []
