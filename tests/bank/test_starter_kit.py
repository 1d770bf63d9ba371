"""The Python bank starter kit (bank_kit/): its own pytest-grpc suite passes,
and the kit's server, run as its README says, passes the whole conformance
suite over real mTLS (the go-live gate)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bank_sim.conformance import CHECKS, KnownSubject, Outcome, run_conformance
from bank_sim.conformance.target import dev_target
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths

ROOT = Path(__file__).resolve().parents[2]
CODE = "102"


def test_the_kits_own_tests_pass() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", "bank_kit/pytest.ini", "bank_kit/tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.fixture
async def kit_bank(pki: PkiPaths, tmp_path: Path) -> AsyncIterator[str]:
    secret = tmp_path / "card-ref.secret"
    secret.write_text("a-test-secret-for-card-refs\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bank_kit.server",
        "--listen",
        "127.0.0.1:0",
        "--bank-code",
        CODE,
        "--cert",
        str(pki.bank_cert(CODE)),
        "--key",
        str(pki.bank_key(CODE)),
        "--ca",
        str(pki.ca_cert),
        "--consent-key",
        f"{CONSENT_KEY_ID}={pki.consent_public_key}",
        "--records",
        str(ROOT / "bank_kit" / "example_records.json"),
        "--card-ref-secret",
        str(secret),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.startswith(b"READY "), line
        yield f"127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
    assert process.returncode == 0


async def test_the_kit_passes_the_conformance_suite(pki: PkiPaths, kit_bank: str) -> None:
    target = dev_target(pki, kit_bank, CODE, KnownSubject("张三", "310101199003071230", 3), timeout=5.0)
    results = await run_conformance(target)
    assert [r.name for r in results] == [c.name for c in CHECKS]
    # The kit leaves out the optional CardCaseService and (on this branch) the
    # session stream: those checks skip.
    not_passed = [(r.name, r.outcome) for r in results if r.outcome is not Outcome.PASS]
    optional = ("cases.", "session.")
    assert not_passed and all(n.startswith(optional) and o is Outcome.SKIP for n, o in not_passed), not_passed


def test_the_readme_commands_use_real_options() -> None:
    """Every option the kit's README passes to its server and to the suite
    exists (the commands are the go-live gate a bank copies)."""
    readme = (ROOT / "bank_kit" / "README.md").read_text(encoding="utf-8")
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", readme, flags=re.S)).replace("\\\n", " ")
    commands = [line.strip() for line in shell.splitlines()]
    server_options = {
        o for c in commands if c.startswith("python -m bank_kit.server") for o in re.findall(r"--[a-z-]+", c)
    }
    suite_options = {o for c in commands if c.startswith("cardlookup-conformance") for o in re.findall(r"--[a-z-]+", c)}
    help_text = subprocess.run(
        [sys.executable, "-m", "bank_kit.server", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert server_options and {o for o in server_options if o not in help_text} == set()
    suite_help = subprocess.run(
        [str(Path(sys.executable).parent / "cardlookup-conformance"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert suite_options and {o for o in suite_options if o not in suite_help} == set()
