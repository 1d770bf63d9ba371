"""The `cardlookup` command against a running hub: the whole journey, and
errors as plain sentences."""

from __future__ import annotations

import asyncio
import io
import re

from rich.console import Console

from cardlookup.pki import PkiPaths
from client.cli import run
from tests.api.helpers import HubHarness


async def cli(hub: HubHarness, pki: PkiPaths, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
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
