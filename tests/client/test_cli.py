"""The `cardlookup` command against a running hub: the whole journey, and
errors as plain sentences."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
from pathlib import Path

from rich.console import Console

from cardlookup.pki import PkiPaths
from client.cli import run
from hub.identity.errors import ceil_second
from tests.api.helpers import HubHarness


async def cli(hub: HubHarness, pki: PkiPaths, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)  # a plain terminal
    argv = ["--hub", f"127.0.0.1:{hub.server.port}", "--pki", str(pki.root), *args]
    code = await asyncio.to_thread(run, argv, console)
    return code, out.getvalue()


async def test_cli_journey(harness: HubHarness, pki: PkiPaths) -> None:
    person = harness.population.demo_person(harness.clock.now().date())
    code, out = await cli(harness, pki, "enrol", "--population-user", person.user_id)
    assert code == 0 and "may look up cards" in out and person.phone not in out
    code, out = await cli(harness, pki, "verify", "--user-id", person.user_id)
    assert code == 0
    verification_id = re.search(r"verification id (\S+)", out).group(1)  # type: ignore[union-attr]
    sms = harness.last_code(person.phone)
    code, out = await cli(
        harness, pki, "query", "--user-id", person.user_id, "--verification-id", verification_id,
        "--code", sms, "--banks", "102,306",
    )  # fmt: skip
    assert code == 0, out
    assert "24小时" in out and "is ready" in out
    query_id = re.search(r"Query (\S+) is ready", out).group(1)  # type: ignore[union-attr]
    code, out = await cli(
        harness, pki, "report", "--user-id", person.user_id, "--query-id", query_id,
        "--password", person.payment_password,
    )  # fmt: skip
    assert code == 0 and "Summary per bank" in out and "广发银行" in out
    truth = harness.population.expected_answer("306", person.id_number)
    for card in truth.listed:
        assert card.last_four in out and card.number not in out
    code, out = await cli(harness, pki, "list", "--user-id", person.user_id)
    assert code == 0 and "viewed" in out


async def test_cli_shows_errors_as_sentences(harness: HubHarness, pki: PkiPaths) -> None:
    code, out = await cli(harness, pki, "verify", "--user-id", "nobody")
    assert code == 1
    assert "Error: This user is not enrolled with the card-lookup service." in out
    person = harness.eligible()
    await harness.enrol(person)
    code, out = await cli(harness, pki, "verify", "--user-id", person.user_id)
    code, out = await cli(harness, pki, "verify", "--user-id", person.user_id)
    assert code == 1 and "An SMS code was sent moments ago; another can be requested after" in out
    code, out = await cli(
        harness, pki, "report", "--user-id", person.user_id,
        "--query-id", "00000000-0000-4000-8000-000000000000", "--password", "123456",
    )  # fmt: skip
    assert code == 1 and "There is no such query for this user." in out


async def test_cli_error_journey_wrong_code_lockout_cooldown(harness: HubHarness, pki: PkiPaths) -> None:
    person = harness.eligible(2)
    await harness.enrol(person)
    code, out = await cli(harness, pki, "verify", "--user-id", person.user_id)
    verification_id = re.search(r"verification id (\S+)", out).group(1)  # type: ignore[union-attr]
    real = harness.last_code(person.phone)
    wrong = "000000" if real != "000000" else "111111"
    query = ("query", "--user-id", person.user_id, "--verification-id", verification_id, "--banks", "102")
    code, out = await cli(harness, pki, *query, "--code", wrong)
    assert (code, out.strip()) == (1, "Error: The SMS code is wrong; 4 attempts left.")
    code, out = await cli(harness, pki, *query, "--code", real)
    query_id = re.search(r"Query (\S+) is ready", out).group(1)  # type: ignore[union-attr]
    bad = "000000" if person.payment_password != "000000" else "111111"
    report = ("report", "--user-id", person.user_id, "--query-id", query_id, "--password")
    for left in ("4 attempts", "3 attempts", "2 attempts", "1 attempt"):
        code, out = await cli(harness, pki, *report, bad)
        assert (code, out.strip()) == (1, f"Error: The payment password is wrong; {left} left before it locks.")
    code, out = await cli(harness, pki, *report, bad)
    assert code == 1
    until = re.fullmatch(
        r"Error: The payment password is locked after repeated failures, until (.+) Beijing time\.", out.strip()
    )
    assert until, out
    # Times in error metadata are rounded up to the second (hub.identity.errors.rfc3339).
    unlock = ceil_second(harness.clock.now() + dt.timedelta(hours=24))
    expected = unlock.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert until.group(1) == expected.strftime("%Y-%m-%d %H:%M:%S")
    code, out = await cli(harness, pki, "list", "--user-id", person.user_id)
    assert code == 0 and query_id in out and out.count("wrong password") == 5  # id whole at 80 columns
    harness.clock.advance(dt.timedelta(minutes=2))
    # In the cooldown the hub refuses the SMS code itself (issue 9 item 5).
    code, out = await cli(harness, pki, "verify", "--user-id", person.user_id)
    assert code == 1 and "A new lookup is allowed 7 days after the latest report, from " in out
    assert out.strip().endswith("Beijing time.") and "Traceback" not in out


async def test_cli_local_problems_exit_2_with_a_sentence(harness: HubHarness, pki: PkiPaths, tmp_path: Path) -> None:
    cases = [
        (("enrol", "--population-user", "nobody"), "nobody is not a user of the synthetic population"),
        (("enrol", "--user-id", "u", "--id-expiry", "2020/01/01"), "--id-expiry must be a date as YYYY-MM-DD"),
        (("query", "--user-id", "u", "--verification-id", "v", "--code", "1", "--face-key", str(tmp_path / "none")),
         "face-provider key"),
    ]  # fmt: skip
    for args, fragment in cases:
        code, out = await cli(harness, pki, *args)
        assert code == 2 and out.startswith("Error: ") and fragment in out and "Traceback" not in out, out
    out_io = io.StringIO()
    missing = ["--pki", str(tmp_path / "nopki"), "banks", "--user-id", "u"]
    code = await asyncio.to_thread(run, missing, Console(file=out_io, width=80, color_system=None))
    assert code == 2 and "has no CA certificate" in out_io.getvalue() and "cardlookup-pki --out" in out_io.getvalue()
    code, out = await cli(harness, pki, "report", "--user-id", "u", "--query-id", "x", "--password", "123456")
    assert code == 1 and "malformed field: name (--query-id)." in out


async def test_cli_device_key_enrol_report_and_new_device(harness: HubHarness, pki: PkiPaths, tmp_path: Path) -> None:
    """Issue 17: the CLI keeps a device key file; reports sealed to it open
    with it only, and `new-device` registers another one."""
    person = harness.population.demo_person(harness.clock.now().date())
    key_file = tmp_path / "phone" / "report-key.hex"
    code, out = await cli(harness, pki, "enrol", "--population-user", person.user_id, "--device-key", str(key_file))
    assert code == 0, out
    assert key_file.stat().st_mode & 0o777 == 0o600
    query = await harness.ready_query(person, ["102", "306"])
    password = person.payment_password
    report = ["report", "--user-id", person.user_id, "--query-id", query.query_id, "--password", password]
    code, out = await cli(harness, pki, *report)
    assert code == 2 and "--device-key" in out
    code, out = await cli(harness, pki, *report, "--device-key", str(key_file))
    assert code == 0 and "Summary per bank" in out and "广发银行" in out, out
    for card in harness.population.expected_answer("306", person.id_number).listed:
        assert card.last_four in out and card.number not in out
    other = tmp_path / "new-phone.hex"
    code, out = await cli(
        harness, pki, "new-device", "--user-id", person.user_id, "--device-key", str(other),
        "--password", person.payment_password,
    )  # fmt: skip
    assert code == 0 and "key 2" in out, out
    code, out = await cli(harness, pki, *report, "--device-key", str(other))
    assert code == 2 and "another key" in out
