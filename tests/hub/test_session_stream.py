"""Bank session streams (issue 16 item 4): the engine with banks whose
registry entry says `session = "on"` or `"auto"`, against the simulated
banks over real mTLS. No timing: only what was answered, and over what."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pytest

from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankSimConfig, FleetConfig
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import HubConfig
from hub.core.domain import BankState
from hub.fanout.lanes import Fanout
from tests.hub import test_hostile_banks as hostile
from tests.hub.helpers import (
    FAST,
    assert_report_is_ground_truth,
    expected_cards,
    fleet_config,
    hub_config,
    new_query,
    report_cards,
    rich_person,
    running_engine,
    running_fleet,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.both_stores

CODES = list(DEFAULT_BANK_CODES)


def with_sessions(config: HubConfig, mode: str, codes: Iterable[str] | None = None) -> HubConfig:
    chosen = set(codes) if codes is not None else {b.code for b in config.banks}
    banks = tuple(dataclasses.replace(b, session=mode) if b.code in chosen else b for b in config.banks)
    return dataclasses.replace(config, banks=banks)


async def test_a_hub_over_sessions_makes_the_same_journey_as_per_call(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = rich_person(population, clock.now().date(), CODES)
    async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
        outcomes = {}
        for mode in ("off", "on", "auto"):
            config = with_sessions(hub_config(pki, fleet.addresses, tmp_path / mode), mode)
            async with running_engine(config, clock) as engine:
                queries = [new_query(person, CODES, user_id=f"user-{mode}-{i}") for i in range(3)]
                for query in queries:
                    await engine.submit(query)
                records = [await wait_for(engine, q.query_id) for q in queries]
                reports = [await engine.read_report(q.query_id) for q in queries]
            for report in reports:
                assert_report_is_ground_truth(report, population, person, CODES)
            outcomes[mode] = (
                [[(b.bank_code, b.state, b.reason) for b in r.banks] for r in records],
                [report_cards(r) for r in reports],
            )
        # The same outcomes and reports. (Attempt counts are not compared: the
        # previous hub's connections going away can fail a first attempt,
        # per call or not; it is retried.)
        assert outcomes["on"] == outcomes["off"] == outcomes["auto"]
        assert all(b[1] == BankState.ANSWERED for r in outcomes["on"][0] for b in r)
        # 3 queries x 16 banks per hub; a session stream per bank for each of
        # the two hubs with sessions, each carrying that hub's exchanges.
        assert all(fleet.call_count(c) >= 9 for c in CODES)
        assert all(2 <= fleet.session_streams(c) < 6 for c in CODES)
        assert all(fleet.overlaps(c) == 0 for c in CODES)


async def test_auto_falls_back_to_per_call_at_a_bank_without_the_session(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    codes = CODES[:4]
    person = rich_person(population, clock.now().date(), codes, min_banks=2)
    base = fleet_config(pki, population, clock, codes)
    banks = tuple(dataclasses.replace(b, session=b.code != codes[0]) for b in base.banks)
    async with running_fleet(dataclasses.replace(base, banks=banks)) as fleet:
        config = with_sessions(hub_config(pki, fleet.addresses, tmp_path), "auto")
        async with running_engine(config, clock) as engine:
            query = new_query(person, codes)
            await engine.submit(query)
            record = await wait_for(engine, query.query_id)
            assert all(b.state == BankState.ANSWERED and b.attempt_count == 1 for b in record.banks)
            assert_report_is_ground_truth(await engine.read_report(query.query_id), population, person, codes)
        assert fleet.session_streams(codes[0]) == 0
        assert [fleet.session_streams(c) for c in codes[1:]] == [1, 1, 1]
        assert all(fleet.call_count(c) == 1 for c in codes)


@pytest.mark.parametrize(
    ("misbehaviour", "state", "reason", "attempts"),
    [
        # The answer is another query's: rejected, like any contract violation.
        (Misbehaviour.SESSION_WRONG_QUERY_ID, BankState.REJECTED, "QUERY_ID_MISMATCH", 1),
        # The exchange ended right; the stray message breaks the stream later.
        (Misbehaviour.SESSION_MESSAGE_AFTER_SUMMARY, BankState.ANSWERED, "", 1),
        # The first exchange stalls to its deadline, is cancelled and retried.
        (Misbehaviour.SESSION_STALL_BLOCKS_OTHERS, BankState.ANSWERED, "", 2),
    ],
)
async def test_a_misbehaving_session_bank_spoils_only_its_own_outcome(
    pki: PkiPaths,
    population: Population,
    clock: ManualClock,
    tmp_path: Path,
    misbehaviour: Misbehaviour,
    state: BankState,
    reason: str,
    attempts: int,
) -> None:
    codes = CODES[:4]
    bad = codes[1]
    person = rich_person(population, clock.now().date(), codes, min_banks=2)
    fleet_cfg: FleetConfig = fleet_config(
        pki, population, clock, codes, faults={bad: Faults(misbehaviour=misbehaviour)}
    )
    assert all(isinstance(b, BankSimConfig) and b.session for b in fleet_cfg.banks)
    async with running_fleet(fleet_cfg) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        config = with_sessions(config, "on")
        if misbehaviour is Misbehaviour.SESSION_STALL_BLOCKS_OTHERS:
            short = dataclasses.replace(config.timings, attempt_timeout=config.timings.attempt_timeout / 5)
            config = dataclasses.replace(config, timings=short)
        fanout = Fanout(config)
        async with running_engine(config, clock, fanout=fanout) as engine:
            query = new_query(person, codes)
            await engine.submit(query)
            record = await wait_for(engine, query.query_id)
            endpoint = config.bank(bad)
            assert endpoint is not None
            session = fanout.channels.session(endpoint)
            if misbehaviour is Misbehaviour.SESSION_MESSAGE_AFTER_SUMMARY:
                # The stream broke, and the bank is called per call meanwhile.
                await wait_until(lambda: session.breaks == {"MESSAGE_AFTER_END": 1})
                assert session.per_call()
            else:
                assert session.breaks == {} and not session.per_call()
            by_code = {b.bank_code: b for b in record.banks}
            assert (by_code[bad].state, by_code[bad].reason, by_code[bad].attempt_count) == (state, reason, attempts)
            others = [by_code[c] for c in codes if c != bad]
            assert all(b.state == BankState.ANSWERED and b.attempt_count == 1 for b in others)
            report = await engine.read_report(query.query_id)
            if state is BankState.ANSWERED:
                assert_report_is_ground_truth(report, population, person, codes)
            else:
                assert report_cards(report) == expected_cards(population, person, [c for c in codes if c != bad])
        assert all(fleet.overlaps(c) == 0 for c in codes)


async def test_hostile_banks_over_sessions_get_the_outcomes_they_get_per_call(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    """tests/hub/test_hostile_banks.py's every fault and misbehaviour at
    once, with every bank on the session stream: the same validation gives
    the same reasons (the 1 MiB message breaks the stream, and the per-call
    fallback attributes it), the same banks never answer, the rest are exact."""
    now = clock.now()
    faults = {code: f for code, (f, _) in hostile.REJECTED.items()} | hostile.NEVER_ANSWER | hostile.RECOVER
    faults["308"] = Faults(outages=((now - dt.timedelta(hours=1), now + dt.timedelta(hours=48)),))
    people = population.eligible_people(now.date())[:3]
    async with running_fleet(fleet_config(pki, population, clock, CODES, faults)) as fleet:
        timings = dataclasses.replace(FAST, attempt_timeout=dt.timedelta(milliseconds=300))
        config = with_sessions(hub_config(pki, fleet.addresses, tmp_path, timings=timings), "on")
        fanout = Fanout(config)
        async with running_engine(config, clock, fanout=fanout) as engine:
            queries = [new_query(p, CODES) for p in people]
            await asyncio.gather(*(engine.submit(q) for q in queries))
            for q in queries:
                await hostile._settled(engine, q.query_id, set(hostile.NEVER_ANSWER))
            clock.advance(dt.timedelta(hours=24, minutes=1))
            engine.wake()
            for person, q in zip(people, queries, strict=True):
                record = await wait_for(engine, q.query_id)
                outcome = {b.bank_code: (b.state, b.reason) for b in record.banks}
                for code, (_, reason) in hostile.REJECTED.items():
                    assert outcome[code] == (BankState.REJECTED, reason), code
                for code in hostile.NEVER_ANSWER:
                    assert outcome[code][0] == BankState.NOT_ANSWERED, (code, outcome[code])
                answered = [c for c in CODES if c not in hostile.REJECTED and c not in hostile.NEVER_ANSWER]
                assert all(outcome[c][0] == BankState.ANSWERED for c in answered)
                report = await engine.read_report(q.query_id)
                assert report_cards(report) == expected_cards(population, person, answered)
            oversized = config.bank("301")
            assert oversized is not None
            assert fanout.channels.session(oversized).breaks.get("MESSAGE_TOO_LARGE", 0) >= 1
        assert all(fleet.session_streams(c) >= 1 for c in CODES)
