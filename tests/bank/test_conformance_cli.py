"""`cardlookup-conformance` as a bank engineer runs it: a separate process
against a running bank, a table or JSON out, the exit status says it all."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest

from bank_sim.conformance import CHECKS
from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.clock import SystemClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population

CODE = "104"


@pytest.fixture
async def sim_bank(pki: PkiPaths, population: Population) -> AsyncIterator[BankFleet]:
    config = FleetConfig(
        pki=pki, banks=(BankSimConfig(CODE),), population=population, clock=SystemClock(), admin_port=None
    )
    async with BankFleet(config) as fleet:
        yield fleet


async def run_cli(*args: str) -> tuple[int, str, str]:
    """Runs the CLI in its own process; the bank keeps serving in this loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bank_sim.conformance.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "GRPC_VERBOSITY": "NONE", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _dev_args(pki: PkiPaths, fleet: BankFleet) -> list[str]:
    return ["--address", fleet.address(CODE), "--bank-code", CODE, "--dev-pki", str(pki.root), "--population-subject"]


async def test_a_correct_bank_exits_zero_with_a_full_table(pki: PkiPaths, sim_bank: BankFleet) -> None:
    code, out, err = await run_cli(*_dev_args(pki, sim_bank))
    assert code == 0, out + err
    for check in CHECKS:
        assert check.name in out
    assert f"{len(CHECKS)} passed, 0 failed, 0 skipped" in out


async def test_a_misbehaving_bank_exits_one_naming_the_check(pki: PkiPaths, sim_bank: BankFleet) -> None:
    sim_bank.set_faults(CODE, Faults(misbehaviour=Misbehaviour.FULL_CARD_NUMBER))
    code, out, err = await run_cli(*_dev_args(pki, sim_bank), "--json")
    assert code == 1, out + err
    outcomes = {r["name"]: r for r in json.loads(out)}
    assert outcomes["list.masked_only"]["outcome"] == "fail"
    assert "looks like a card number" in outcomes["list.masked_only"]["explanation"]
    assert outcomes["consent.valid_accepted"]["outcome"] == "pass"


async def test_explicit_files_work_without_the_dev_shortcuts(
    pki: PkiPaths, sim_bank: BankFleet, population: Population
) -> None:
    person = next(p for p in population.people if population.expected_answer(CODE, p.id_number).listed)
    code, out, err = await run_cli(
        "--address",
        sim_bank.address(CODE),
        "--bank-code",
        CODE,
        "--ca",
        str(pki.ca_cert),
        "--client-cert",
        str(pki.cert("hub-client")),
        "--client-key",
        str(pki.key("hub-client")),
        "--consent-key",
        str(pki.consent_signing_key),
        "--consent-key-id",
        "hub-consent-dev-1",
        "--subject-name",
        person.full_name,
        "--subject-id",
        person.id_number,
        "--only",
        "consent",
        "--json",
    )
    assert code == 0, out + err
    results = json.loads(out)
    assert {r["name"] for r in results} == {c.name for c in CHECKS if c.name.startswith("consent.")}


async def test_missing_inputs_are_a_usage_error() -> None:
    code, _, err = await run_cli("--address", "127.0.0.1:1", "--bank-code", "102")
    assert code == 2
    assert "--ca" in err and "--subject-id" in err
