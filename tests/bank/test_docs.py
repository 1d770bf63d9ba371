"""The bank-facing docs against the code: every documented flag exists in
`--help`, the documented example config file loads, the conformance checks
are listed in the order they run, and every documented reason is one the code
sends."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bank_sim.config_file import load_settings
from bank_sim.conformance.runner import CHECKS
from bank_sim.conformance.target import DEFAULT_UNKNOWN_ID_NUMBER
from bank_sim.faults import Faults, Misbehaviour

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SIMULATOR_DOC = (ROOT / "docs" / "bank-simulator.md").read_text(encoding="utf-8")
GUIDE = (ROOT / "docs" / "bank-integration.md").read_text(encoding="utf-8")


def section(doc: str, heading: str) -> str:
    return doc.split(heading, 1)[1].split("\n## ", 1)[0]


def help_text(command: str) -> str:
    result = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_options(text: str) -> set[str]:
    rows = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `--")]
    return {option for row in rows for option in re.findall(r"`(--[a-z-]+)", row)}


@pytest.mark.parametrize(
    ("command", "doc", "heading"),
    [
        ("cardlookup-banks", SIMULATOR_DOC, "## Running it"),
        ("cardlookup-conformance", GUIDE, "## The conformance suite"),
        ("cardlookup-population", SIMULATOR_DOC, "## People for clients and load tests"),
    ],
)
def test_every_documented_option_is_in_help(command: str, doc: str, heading: str) -> None:
    documented = table_options(section(doc, heading))
    assert len(documented) >= 5
    helped = set(re.findall(r"^  (--[a-z-]+)", help_text(command), flags=re.M))
    assert documented <= helped, documented - helped
    assert helped - {"--help"} <= documented, f"undocumented: {helped - documented - {'--help'}}"


def test_the_documented_simulator_config_file_loads(tmp_path: Path) -> None:
    block = re.search(r"## Configuration file.*?```toml\n(.*?)```", SIMULATOR_DOC, flags=re.S)
    assert block is not None
    path = tmp_path / "banks.toml"
    path.write_text(block.group(1), encoding="utf-8")
    banks = {b.code: b for b in load_settings(path).bank_configs()}
    assert len(banks) == 16 and banks["102"].port == 7202 and banks["103"].port == 7101
    assert banks["102"].faults == Faults(latency=0.02, error_rate=0.2, error_code="UNAVAILABLE")
    assert banks["308"].faults.misbehaviour is Misbehaviour.SUMMARY_MISMATCH


def test_the_checks_are_documented_in_the_order_they_run() -> None:
    documented = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section(GUIDE, "## The conformance suite"), flags=re.M)
    assert documented == [check.name for check in CHECKS]


def test_documented_defaults_of_the_suite() -> None:
    assert f"default `{DEFAULT_UNKNOWN_ID_NUMBER}`" in GUIDE


def test_every_documented_bank_reason_is_sent_by_the_reference_bank() -> None:
    table = section(GUIDE, "## Status codes and what the hub does")
    reasons = set(re.findall(r"^\| `([A-Z_]+)` \| `[A-Z_]+` \|", table, flags=re.M))
    assert len(reasons) == 13  # 11 of ListCards, 2 of the optional card cases
    code = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "bank_sim").glob("*.py"))
    code += (ROOT / "cardlookup" / "consent.py").read_text(encoding="utf-8")
    assert {r for r in reasons if f'"{r}"' not in code} == set()


def test_every_documented_misbehaviour_exists() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \| the", section(SIMULATOR_DOC, "## Fault switches"), flags=re.M))
    assert documented == {m.name for m in Misbehaviour}


def test_the_limits_table_equals_the_hubs_constants() -> None:
    """docs/bank-integration.md states the hub's limits as numbers in one
    table; each must be the number the hub (and the reference banks) use."""
    from bank_kit import consent as kit
    from bank_sim import directory
    from bank_sim.conformance import list_checks
    from hub.core import config
    from hub.fanout import channels, validation

    rows = re.findall(r"^\| ([^|]+?) \| ([0-9,]+)( s)? \|", section(GUIDE, "## Limits in numbers"), flags=re.M)
    table = {name: int(value.replace(",", "")) for name, value, _ in rows}
    card_ref_max = re.search(r"\{1,(\d+)\}", validation._CARD_REF.pattern)
    assert card_ref_max is not None
    assert table == {
        "cards per answer": validation.MAX_CARDS,
        "bytes per response message": validation.MAX_MESSAGE_BYTES,
        "bytes per message on the hub's channel, each direction": channels.MAX_RECEIVE_BYTES,
        "unlisted cards per reason": validation.MAX_UNLISTED,
        "`card_ref` length": int(card_ref_max.group(1)),
        "`full_name` length, in a request": directory.MAX_NAME_LENGTH,
        "deadline per call, stream included": config.Timings().attempt_timeout.total_seconds(),
        "calls in flight to one bank, per hub process": config.BankEndpoint.__dataclass_fields__[
            "max_concurrent"
        ].default,
    }
    # The suite and the starter kit hold the same numbers.
    assert (list_checks.MAX_CARDS, list_checks.MAX_MESSAGE_BYTES) == (
        validation.MAX_CARDS,
        validation.MAX_MESSAGE_BYTES,
    )
    assert kit.MAX_NAME_LENGTH == directory.MAX_NAME_LENGTH


def test_the_guide_names_real_server_options() -> None:
    """The grpcio option names the guide gives are the ones the starter kit
    sets (and grpcio accepts: the kit's server starts in the kit tests)."""
    from bank_kit import server

    table = section(GUIDE, "## Performance expectations")
    for name, _ in server.SERVER_OPTIONS:
        if name.startswith("grpc.http2.") or name == "grpc.max_receive_message_length":
            assert f"`{name}`" in table, name
    assert "maximum_concurrent_rpcs" in table and "maximum_concurrent_rpcs" in (ROOT / "bank_kit/server.py").read_text()
