"""The conformance suite's optional session group (issue 16 item 4) against
the simulated bank: a correct bank passes it, a bank without the session
skips it, and each session misbehaviour fails exactly its check."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bank_sim.conformance import ConformanceTarget, Outcome, run_conformance
from bank_sim.conformance.session_checks import SESSION_CHECKS, SESSION_GUIDE_VERSION
from bank_sim.conformance.target import dev_target, population_subject
from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.clock import SystemClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population

CODE = "102"
NAMES = [c.name for c in SESSION_CHECKS]


@pytest.fixture(params=[True, False], ids=["with-session", "without-session"])
async def sim_bank(request: pytest.FixtureRequest, pki: PkiPaths, population: Population) -> AsyncIterator[BankFleet]:
    config = FleetConfig(
        pki=pki,
        banks=(BankSimConfig(CODE, session=request.param),),
        population=population,
        clock=SystemClock(),
        admin_port=None,
    )
    async with BankFleet(config) as fleet:
        yield fleet


@pytest.fixture
def target(pki: PkiPaths, population: Population, sim_bank: BankFleet) -> ConformanceTarget:
    return dev_target(pki, sim_bank.address(CODE), CODE, population_subject(population, CODE), timeout=5.0)


async def test_the_session_group_passes_or_is_skipped_without_the_session(
    target: ConformanceTarget, request: pytest.FixtureRequest
) -> None:
    results = await run_conformance(target, only=("session",))
    assert [r.name for r in results] == NAMES
    offered = "with-session" in request.node.callspec.id
    expected = Outcome.PASS if offered else Outcome.SKIP
    assert [(r.name, r.outcome, r.explanation) for r in results if r.outcome is not expected] == []
    if not offered:
        assert all("UNIMPLEMENTED" in r.explanation for r in results)
    # Each check says it is new with the session's guide version.
    assert all(f"new in guide {SESSION_GUIDE_VERSION}" in r.description for r in results)


@pytest.mark.parametrize(
    ("misbehaviour", "check"),
    [
        (Misbehaviour.SESSION_WRONG_QUERY_ID, "session.answers_like_list_cards"),
        (Misbehaviour.SESSION_MESSAGE_AFTER_SUMMARY, "session.nothing_after_the_end"),
        (Misbehaviour.SESSION_STALL_BLOCKS_OTHERS, "session.slow_exchange_blocks_none"),
    ],
)
async def test_each_session_misbehaviour_fails_its_check(
    target: ConformanceTarget,
    sim_bank: BankFleet,
    misbehaviour: Misbehaviour,
    check: str,
    request: pytest.FixtureRequest,
) -> None:
    if "without-session" in request.node.callspec.id:
        pytest.skip("a bank without the session has no session to misbehave on")
    sim_bank.set_faults(CODE, Faults(misbehaviour=misbehaviour))
    # A stalling bank makes every session check wait out its timeout: run its
    # own, with a short timeout (the stalled exchange never ends, however long).
    stalls = misbehaviour is Misbehaviour.SESSION_STALL_BLOCKS_OTHERS
    checked = dataclasses.replace(target, timeout=1.0) if stalls else target
    results = {r.name: r for r in await run_conformance(checked, only=(check,) if stalls else ("session",))}
    assert results[check].outcome is Outcome.FAIL, results[check]
    assert results[check].explanation.count("Fix:") == 1
    assert {n for n, r in results.items() if r.outcome is Outcome.FAIL} == {check}
    # The per-call ListCards of the same bank is right: the list group passes.
    listed = await run_conformance(target, only=("list.stream_shape", "list.masked_only", "list.idempotent"))
    assert all(r.outcome is Outcome.PASS for r in listed), listed
