"""`cardlookup-banks` in a subprocess: starts the banks, writes the
addresses file, serves over mTLS, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from bank_sim.admin_client import AdminClient
from bank_sim.faults import Faults, Misbehaviour
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import SystemClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from tests.bank.caller import bank_caller

START_TIMEOUT = 60.0


async def start_cli(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bank_sim.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)).decode()
    if not line:
        assert proc.stderr is not None
        raise AssertionError(f"cardlookup-banks failed: {(await proc.stderr.read()).decode()}")
    return proc, line


async def stop_cli(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    return out.decode()


async def test_cli_serves_16_banks_writes_addresses_and_stops_on_sigterm(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    config = tmp_path / "banks.toml"
    config.write_text('[[banks]]\ncode = "308"\nfaults = { misbehaviour = "WRONG_DIGITS" }\n', encoding="utf-8")
    out = tmp_path / "run" / "addresses.json"
    out.parent.mkdir()
    out.write_text("stale")
    proc, ready = await start_cli("--pki", str(pki.root), "--config", str(config), "--addresses-out", str(out))
    tail = ""
    try:
        assert ready.startswith("bank_sim ready: 16 banks")
        document = json.loads(out.read_text())
        assert list(document["banks"]) == list(DEFAULT_BANK_CODES)
        person = next(p for p in population.people if population.expected_answer("308", p.id_number).listed)
        async with bank_caller(pki, document["banks"]) as caller:
            now = SystemClock().now()
            got = await caller.list_cards("102", caller.request("102", person.full_name, person.id_number, now=now))
            expected = population.expected_answer("102", person.id_number)
            assert [c.card_ref for c in got.cards] == [c.card_ref for c in expected.listed]
            bad = await caller.list_cards("308", caller.request("308", person.full_name, person.id_number, now=now))
            assert bad.cards[0].first_four == "62a2"  # the config file's fault is live
        async with AdminClient.connect(pki, document["admin"], document["admin_server_name"]) as admin:
            assert await admin.get_faults("308") == Faults(misbehaviour=Misbehaviour.WRONG_DIGITS)
            assert {b.code: b.call_count for b in await admin.list_banks()}["102"] == 1
    finally:
        if proc.returncode is None:
            tail = await stop_cli(proc)
    assert "bank_sim stopped" in tail


async def test_cli_creates_a_missing_pki_and_runs_synthetic_banks(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    out = tmp_path / "addresses.json"
    proc, ready = await start_cli(
        "--pki", str(pki_dir), "--count", "20", "--no-admin", "--population-size", "40", "--addresses-out", str(out)
    )
    try:
        assert ready.startswith("bank_sim ready: 20 banks") and "no admin" in ready
        document = json.loads(out.read_text())
        assert list(document["banks"])[-4:] == ["5000", "5001", "5002", "5003"]
        assert document["admin"] is None
        pki = PkiPaths(pki_dir)
        assert pki.bank_cert("5003").exists() and pki.consent_signing_key.exists()
        population = Population(size=40)
        person = population.people[0]
        async with bank_caller(pki, document["banks"]) as caller:
            got = await caller.list_cards(
                "5003", caller.request("5003", person.full_name, person.id_number, now=SystemClock().now())
            )
        assert got.summary is not None
    finally:
        if proc.returncode is None:
            await stop_cli(proc)


async def test_cli_refuses_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "banks.toml"
    config.write_text("[fleet]\ncount = 0\n", encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bank_sim.main",
        "--pki",
        str(tmp_path / "pki"),
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"count" in err
    assert len(err.decode().strip().splitlines()) == 1
    assert not (tmp_path / "pki").exists()
