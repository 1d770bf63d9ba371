"""The conformance suite against the bank simulator: a correct bank passes
every check; a bank switched to each misbehaviour fails the named check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bank_sim.conformance import CHECKS, ConformanceTarget, Outcome, run_conformance
from bank_sim.conformance.target import dev_target, population_subject
from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.clock import SystemClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population

CODE = "102"


@pytest.fixture
async def sim_bank(pki: PkiPaths, population: Population) -> AsyncIterator[BankFleet]:
    """One simulated bank on the real clock (the suite signs consents with
    the real time), no admin server."""
    config = FleetConfig(
        pki=pki, banks=(BankSimConfig(CODE),), population=population, clock=SystemClock(), admin_port=None
    )
    async with BankFleet(config) as fleet:
        yield fleet


@pytest.fixture
def target(pki: PkiPaths, population: Population, sim_bank: BankFleet) -> ConformanceTarget:
    return dev_target(pki, sim_bank.address(CODE), CODE, population_subject(population, CODE), timeout=5.0)


def _failed(results: list) -> dict[str, str]:
    return {r.name: r.explanation for r in results if r.outcome is Outcome.FAIL}


async def test_a_correct_bank_passes_every_check(target: ConformanceTarget) -> None:
    results = await run_conformance(target)
    assert [r.name for r in results] == [c.name for c in CHECKS]
    assert _failed(results) == {}
    assert all(r.outcome is Outcome.PASS for r in results), [(r.name, r.explanation) for r in results]


@pytest.mark.parametrize(
    ("misbehaviour", "check"),
    [
        (Misbehaviour.FULL_CARD_NUMBER, "list.masked_only"),
        (Misbehaviour.WRONG_DIGITS, "list.masked_only"),
        (Misbehaviour.UNKNOWN_CARD_TYPE, "list.card_type_known"),
        (Misbehaviour.SUMMARY_MISMATCH, "list.summary_matches_stream"),
        (Misbehaviour.OVERSIZED_MESSAGE, "list.message_size"),
    ],
)
async def test_a_misbehaving_bank_fails_the_named_check(
    target: ConformanceTarget, sim_bank: BankFleet, misbehaviour: Misbehaviour, check: str
) -> None:
    sim_bank.set_faults(CODE, Faults(misbehaviour=misbehaviour))
    results = await run_conformance(target, only=("tls", "consent", "list"))
    failed = _failed(results)
    assert check in failed, failed
    assert failed[check].count("Fix:") == 1
    # The bank's transport and consent handling are still right: only the
    # answer's data is blamed.
    assert all(name.startswith("list.") for name in failed), failed


def test_the_suite_is_as_strict_as_the_hub() -> None:
    """A bank that passes the suite must not have its answers discarded by the
    hub's validator for size or counts."""
    from bank_sim.conformance import list_checks
    from hub import validation

    assert list_checks.MAX_MESSAGE_BYTES == validation.MAX_MESSAGE_BYTES
    assert list_checks.MAX_UNLISTED_PER_REASON == validation.MAX_UNLISTED
