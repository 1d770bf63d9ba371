"""Issue 18 item 2: `cardlookup-population --expected` is the ground truth a
test in any language reads. For people who ran a full journey against the
simulated banks, the JSON equals what the hub's report says, bank by bank:
counts, unlisted counts by reason, and the masked cards."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from tests.api.helpers import HubHarness

NODE_DIR = Path(__file__).resolve().parents[1] / "node_bank"
HAS_NODE = shutil.which("node") is not None and (NODE_DIR / "node_modules").is_dir()

CHINA = dt.timezone(dt.timedelta(hours=8))


async def population_json(*args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cardlookup.population_cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    document: dict[str, Any] = json.loads(out)
    return document


def report_json(report: pb.Report, bank_code: str) -> dict[str, Any]:
    """One bank's part of a report, in the shape of the expected answer (the
    report has no card_ref: the hub gives each card its own card_id)."""
    (summary,) = [s for s in report.bank_summaries if s.bank_code == bank_code]
    assert summary.state == pb.BANK_OUTCOME_STATE_ANSWERED, summary
    return {
        "bank_code": bank_code,
        "debit_card_count": summary.debit_card_count,
        "credit_card_count": summary.credit_card_count,
        "unlisted_card_count": summary.unlisted_card_count,
        # One entry per reason; the report keeps the bank's order of them.
        "unlisted": sorted(
            ({"reason": pb.UnlistedReason.Name(u.reason), "card_count": u.card_count} for u in summary.unlisted),
            key=lambda u: pb.UnlistedReason.Value(str(u["reason"])),
        ),
        "cards": sorted(
            (pb.CardType.Name(c.card_type), c.first_four, c.last_four, c.number_length)
            for c in report.cards
            if c.bank_code == bank_code
        ),
    }


def expected_for_report(expected: dict[str, Any]) -> dict[str, Any]:
    cards = sorted((c["card_type"], c["first_four"], c["last_four"], c["number_length"]) for c in expected["cards"])
    return {**expected, "cards": cards}


async def node_check(
    pki: PkiPaths, port: int, expected: Path, user_id: str, query_id: str, password: str
) -> tuple[int, dict[str, Any]]:
    """tests/node_bank/check_report.js: a Node.js test's comparison, as the doc shows it."""
    node = shutil.which("node")
    assert node is not None
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "check_report.js"),
        *("--target", f"127.0.0.1:{port}", "--ca", str(pki.ca_cert)),
        *("--cert", str(pki.cert("app-backend")), "--key", str(pki.key("app-backend"))),
        *("--expected", str(expected), "--user-id", user_id, "--query-id", query_id, "--password", password),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode in (0, 1), err.decode()
    result: dict[str, Any] = json.loads(out)
    return process.returncode, result


async def test_the_expected_answer_json_equals_the_hubs_report(
    harness: HubHarness, population: Population, pki: PkiPaths, tmp_path: Path
) -> None:
    on = harness.clock.now().astimezone(CHINA).date()
    document = await population_json(
        *("--seed", str(population.seed), "--size", str(population.size), "--on", on.isoformat()),
        *("--eligible", "--expected"),
    )
    people = document["people"]
    assert people and all(p["eligible"] for p in people)
    expected_file = tmp_path / "expected.json"
    expected_file.write_text(json.dumps(document, ensure_ascii=False))

    def richness(person: dict[str, Any]) -> tuple[int, int]:
        answers = person["expected"].values()
        return sum(a["unlisted_card_count"] for a in answers), sum(len(a["cards"]) for a in answers)

    # The people with most unlisted cards, then most cards: the comparison
    # covers both kinds, every reason the sample holds, and both card types.
    chosen = sorted(people, key=richness, reverse=True)[:3]
    seen_reasons: set[str] = set()
    seen_types: set[str] = set()
    for entry in chosen:
        person = population.person(entry["user_id"])
        await harness.enrol(person)
        query = await harness.ready_query(person)
        report = await harness.client.get_report(person.user_id, query.query_id, person.payment_password)
        assert sorted(entry["expected"]) == sorted(s.bank_code for s in report.bank_summaries)
        for code, expected in entry["expected"].items():
            assert report_json(report, code) == expected_for_report(expected), (entry["user_id"], code)
            seen_reasons |= {u["reason"] for u in expected["unlisted"]}
            seen_types |= {c["card_type"] for c in expected["cards"]}
        if HAS_NODE:  # the same comparison in Node.js, from the JSON file alone
            args = (entry["user_id"], query.query_id, person.payment_password)
            status, result = await node_check(pki, harness.server.port, expected_file, *args)
            assert (status, result) == (0, {"banks_checked": 16, "mismatches": []})
            # The check bites: one count off, and that bank is named.
            bank = next(code for code, a in entry["expected"].items() if a["cards"])
            tampered = json.loads(expected_file.read_text())
            person_entry = next(p for p in tampered["people"] if p["user_id"] == entry["user_id"])
            person_entry["expected"][bank]["debit_card_count"] += 1
            (tmp_path / "tampered.json").write_text(json.dumps(tampered, ensure_ascii=False))
            status, result = await node_check(pki, harness.server.port, tmp_path / "tampered.json", *args)
            assert status == 1 and [m["bank_code"] for m in result["mismatches"]] == [bank]
    assert seen_types == {"CARD_TYPE_DEBIT", "CARD_TYPE_CREDIT"}
    assert len(seen_reasons) >= 2


async def test_the_expected_answer_is_what_the_bank_streams(population: Population) -> None:
    """The JSON describes cards exactly as a bank returns them (card_ref and
    all), in the order it streams them, with no full card number."""
    document = await population_json("--expected", "--count", "40")
    for entry in document["people"]:
        for code, expected in entry["expected"].items():
            truth = population.expected_answer(code, entry["id_number"])
            assert [c["card_ref"] for c in expected["cards"]] == [c.card_ref for c in truth.listed]
            for card, held in zip(expected["cards"], truth.listed, strict=True):
                assert held.number not in json.dumps(card)
                assert (card["first_four"], card["last_four"]) == (held.number[:4], held.number[-4:])
            assert expected["unlisted_card_count"] == sum(truth.unlisted.values())


def test_the_doc_shows_every_key_of_the_expected_answer(population: Population) -> None:
    from pathlib import Path

    from cardlookup.population_expected import answer_json

    doc = (Path(__file__).resolve().parents[2] / "docs" / "bank-simulator.md").read_text()
    section = doc[doc.index("### The expected answer") :]
    person = population.people[0]
    answer = answer_json(population.expected_answer("102", person.id_number))
    for key in answer:
        assert f'"{key}"' in section, key
    assert "tests/api/test_expected_answer.py" in section and "--expected" in section
    # The doc's Node.js lines are the running test's own lines.
    script = (NODE_DIR / "check_report.js").read_text()
    snippet = re.search(r"```js\n(.*?)```", section, re.S)
    assert snippet
    for line in snippet.group(1).splitlines():
        if line.strip() and not line.strip().startswith("//"):
            assert line.strip() in script, line
