"""Issue 18 item 5: the versioned conformance suite. Every check names the
bank guide version that introduced it; `--profile V` certifies against V and
lists the newer checks as "new since your profile"; the guide's changelog
for banks lists the same versions and checks. The reference bank, the
Node.js bank and the starter kit pass at every profile; a bank built to the
first guide passes profile 1.0 and is told of the newer checks, not failed
by them."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bank_sim.conformance import CHECKS, ConformanceTarget, Outcome, run_conformance
from bank_sim.conformance.results import Check
from bank_sim.conformance.target import KnownSubject, dev_target, population_subject
from bank_sim.conformance.versions import CURRENT_GUIDE_VERSION, GUIDE_VERSIONS, KNOWN_VERSIONS, version_key
from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.clock import SystemClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from tests.bank.test_conformance_cli import run_cli
from tests.bank.test_starter_kit import kit_bank  # noqa: F401 (a fixture)
from tests.node_bank.harness import NodeBank, write_bank_data

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "bank-integration.md").read_text(encoding="utf-8")
CODE = "105"
OLD = "301"  # a bank built to guide 1.0: no CardCaseService, no session stream


def undeclared(checks: tuple[Check, ...]) -> list[str]:
    return [c.name for c in checks if c.since not in KNOWN_VERSIONS]


def newer_than(profile: str) -> list[str]:
    return [c.name for c in CHECKS if version_key(c.since) > version_key(profile)]


def test_every_check_declares_a_known_guide_version() -> None:
    assert undeclared(CHECKS) == []
    # The test bites: a check that does not say its version is named.
    bare = Check("group.new_rule", "A rule someone forgot to date.", CHECKS[0].run)
    assert undeclared((*CHECKS, bare)) == ["group.new_rule"]


def test_versions_are_ordered_and_the_current_one_is_the_last() -> None:
    keys = [version_key(v.version) for v in GUIDE_VERSIONS]
    assert keys == sorted(set(keys))
    assert GUIDE_VERSIONS[-1].version == CURRENT_GUIDE_VERSION
    assert version_key(CURRENT_GUIDE_VERSION) == max(version_key(c.since) for c in CHECKS)
    with pytest.raises(ValueError):
        version_key("1")


def test_the_changelog_for_banks_lists_every_version_and_its_checks() -> None:
    assert f"**Guide version {CURRENT_GUIDE_VERSION}.**" in GUIDE
    changelog = GUIDE.split("## Changelog for banks", 1)[1].split("\n## ", 1)[0]
    entries = re.split(r"^### ", changelog, flags=re.M)[1:]
    documented = {entry.split()[0]: entry for entry in entries}
    assert list(documented) == [v.version for v in reversed(GUIDE_VERSIONS)]  # newest first
    for version in GUIDE_VERSIONS:
        entry = documented[version.version]
        assert f"({version.date})" in entry.splitlines()[0]
        checks_part = entry.split("**Checks:**", 1)[1]
        listed = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", checks_part))
        assert listed == {c.name for c in CHECKS if c.since == version.version}, version.version
        if version.version != GUIDE_VERSIONS[0].version:
            for part in ("**What changed.**", "**Why.**", "**What you must do.**"):
                assert part in entry, (version.version, part)


async def profiles_of(target: ConformanceTarget) -> dict[str, list]:
    return {v: await run_conformance(target, profile=v) for v in KNOWN_VERSIONS}


def assert_passes_every_profile(runs: dict[str, list], may_skip: str = "") -> None:
    for profile, results in runs.items():
        assert [r.name for r in results] == [c.name for c in CHECKS]
        new = [r.name for r in results if r.outcome is Outcome.NEW]
        assert new == newer_than(profile), profile
        problems = [
            (r.name, r.outcome.value, r.explanation)
            for r in results
            if r.outcome not in (Outcome.PASS, Outcome.NEW) and not (may_skip and r.name.startswith(may_skip))
        ]
        assert problems == [], profile
        assert all(r.since for r in results)


@pytest.fixture
async def sim_bank(pki: PkiPaths, population: Population) -> AsyncIterator[BankFleet]:
    config = FleetConfig(
        pki=pki,
        banks=(BankSimConfig(CODE), BankSimConfig(OLD, card_cases=False, session=False)),
        population=population,
        clock=SystemClock(),
        admin_port=None,
    )
    async with BankFleet(config) as fleet:
        yield fleet


async def test_the_reference_bank_passes_every_profile(
    pki: PkiPaths, population: Population, sim_bank: BankFleet
) -> None:
    target = dev_target(pki, sim_bank.address(CODE), CODE, population_subject(population, CODE), timeout=5.0)
    assert_passes_every_profile(await profiles_of(target))


async def test_the_node_bank_passes_every_profile(pki: PkiPaths, population: Population, tmp_path: Path) -> None:
    code = "308"
    async with NodeBank(pki, code, write_bank_data(population, code, tmp_path / "cards.json")) as address:
        target = dev_target(pki, address, code, population_subject(population, code), timeout=5.0)
        assert_passes_every_profile(await profiles_of(target))


async def test_the_starter_kit_passes_every_profile(pki: PkiPaths, kit_bank: str) -> None:  # noqa: F811
    target = dev_target(pki, kit_bank, "102", KnownSubject("张三", "310101199003071230", 3), timeout=5.0)
    # The kit offers the optional CardCaseService: nothing skips.
    assert_passes_every_profile(await profiles_of(target))


async def test_a_bank_built_to_the_first_guide_passes_profile_1_0_and_learns_of_the_rest(
    pki: PkiPaths, population: Population, sim_bank: BankFleet
) -> None:
    old = OLD
    sim_bank.set_faults(old, Faults(misbehaviour=Misbehaviour.FIRST_GUIDE))
    args = ["--address", sim_bank.address(old), "--bank-code", old, "--dev-pki", str(pki.root), "--population-subject"]

    status, out, err = await run_cli(*args, "--profile", "1.0")
    assert status == 0, out + err
    assert "new since your profile 1.0" in out
    for name in newer_than("1.0"):
        assert name in out.split("new since your profile 1.0", 1)[1], name
    ran = len(CHECKS) - len(newer_than("1.0"))
    assert f"{ran} passed, 0 failed, 0 skipped (profile 1.0); {len(newer_than('1.0'))} new since your profile" in out

    status, out, err = await run_cli(*args, "--json")  # the current guide
    assert status == 1, out + err
    outcomes = {r["name"]: r for r in json.loads(out)}
    failed = {name for name, r in outcomes.items() if r["outcome"] == "fail"}
    assert failed == {
        "tls.caller_identity_from_san",
        "request.trailing_newline_refused",
        "list.unlisted_reason_precedence",
    }
    assert all(outcomes[name]["since"] == "1.1" for name in failed)
    assert {r["outcome"] for r in outcomes.values() if r["since"] == "1.0"} == {"pass"}


async def test_profile_json_marks_newer_checks_new_and_an_unknown_profile_is_a_usage_error(
    pki: PkiPaths, sim_bank: BankFleet
) -> None:
    args = [
        "--address",
        sim_bank.address(CODE),
        "--bank-code",
        CODE,
        "--dev-pki",
        str(pki.root),
        "--population-subject",
    ]
    status, out, _ = await run_cli(*args, "--profile", "1.1", "--json")
    assert status == 0
    results = json.loads(out)
    assert [r["name"] for r in results if r["outcome"] == "new"] == newer_than("1.1")
    since = {c.name: c.since for c in CHECKS}
    assert all(f"new in guide {since[r['name']]}" in r["explanation"] for r in results if r["outcome"] == "new")
    status, _, err = await run_cli(*args, "--profile", "0.9")
    assert status == 2 and "--profile" in err


def test_the_guides_by_hand_run_works_as_written(tmp_path: Path) -> None:
    """docs/bank-integration.md's "try it by hand" block, run in bash as
    written (banks on free ports), then the banks stopped."""
    import os
    import subprocess
    import sys

    section = GUIDE.split("## The conformance suite", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"To try it by hand on the simulator:\n\n```sh\n(.*?)```", section, re.S)
    assert block
    # The trap stops the background banks however the block ends (a failing
    # command under set -e must not leave them running after the test).
    script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block.group(1) + "kill %1; wait\n"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GRPC_VERBOSITY": "NONE",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(CHECKS)} passed, 0 failed, 0 skipped (profile {CURRENT_GUIDE_VERSION})" in result.stdout
    assert f"; {len(newer_than('1.0'))} new since your profile" in result.stdout
