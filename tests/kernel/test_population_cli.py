"""`cardlookup-population`: the synthetic population as JSON, all of it or only
the people a given hub would let look up (R1, R2), N of them on demand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cardlookup.banks import bank_fleet
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from cardlookup.population_cli import main
from hub.core.config import HubConfig

DAY = "2026-01-05"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    main([*args, "--on", DAY])
    return json.loads(capsys.readouterr().out)


def test_everyone_by_default_with_their_eligibility(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run(capsys)
    population = Population()
    assert (doc["seed"], doc["size"], doc["on"]) == (population.seed, population.size, DAY)
    assert [p["id_number"] for p in doc["people"]] == [p.id_number for p in population.people]
    eligible = {p.id_number for p in population.eligible_people(dt.date(2026, 1, 5))}
    assert {p["id_number"] for p in doc["people"] if p["eligible"]} == eligible
    assert 0 < len(eligible) < len(doc["people"])  # both kinds are there
    first = population.people[0]
    assert doc["people"][0] == {
        "user_id": first.user_id,
        "full_name": first.full_name,
        "id_number": first.id_number,
        "id_expiry_date": first.id_expiry.isoformat() if first.id_expiry else "",
        "region_code": first.region_code,
        "phone_number": first.phone,
        "payment_password": first.payment_password,
        "eligible": first.id_number in eligible,
    }


def test_n_eligible_people_grow_the_population(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run(capsys, "--eligible", "--count", "500")
    assert len(doc["people"]) == 500 and doc["size"] > 500
    grown = Population(seed=doc["seed"], size=doc["size"])
    expected = grown.eligible_people(dt.date(2026, 1, 5))[:500]
    assert [p["id_number"] for p in doc["people"]] == [p.id_number for p in expected]
    # The first people never change as the population grows.
    assert doc["people"][0]["id_number"] == Population().eligible_people(dt.date(2026, 1, 5))[0].id_number


def test_eligible_under_a_hub_config(capsys: pytest.CaptureFixture[str], pki: PkiPaths, tmp_path: Path) -> None:
    config = dataclasses.replace(
        HubConfig.dev(pki, {"102": "127.0.0.1:7100"}, tmp_path), open_regions=frozenset({"310000"})
    )
    path = tmp_path / "hub.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    doc = run(capsys, "--eligible", "--hub-config", str(path))
    assert doc["people"] and {p["region_code"] for p in doc["people"]} == {"310000"}
    assert all(p["eligible"] for p in doc["people"])


def test_a_bad_hub_config_is_one_line_and_status_2(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("open_regions = 5\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "cardlookup.population_cli", "--eligible", "--hub-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("cardlookup-population: ") and result.stderr.count("\n") == 1


def test_a_hub_config_without_banks_yet_is_enough(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Issue 18 item 6: the population size is needed before the banks start,
    so only `open_regions` is read; a file whose banks are not listed yet
    (nor its keys written) will do."""
    path = tmp_path / "hub.toml"
    path.write_text('open_regions = ["310000", "110000"]\n', encoding="utf-8")
    doc = run(capsys, "--eligible", "--hub-config", str(path))
    assert doc["people"] and {p["region_code"] for p in doc["people"]} == {"310000", "110000"}


def test_a_closed_pipe_ends_quietly() -> None:
    """`cardlookup-population | head` prints no BrokenPipeError traceback."""
    command = f"{sys.executable} -m cardlookup.population_cli --expected --size 2000 | head -c 100 >/dev/null"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_expected_answers_cover_every_bank_of_the_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run(capsys, "--expected", "--bank-count", "20", "--count", "30")
    population = Population(banks=bank_fleet(20))
    for entry in doc["people"]:
        assert list(entry["expected"]) == [b.code for b in bank_fleet(20)]  # the 16 default, then synthetic
        for code, answer in entry["expected"].items():
            truth = population.expected_answer(code, entry["id_number"])
            assert (answer["debit_card_count"], answer["credit_card_count"]) == (truth.debit_count, truth.credit_count)
            assert {u["reason"].removeprefix("UNLISTED_REASON_"): u["card_count"] for u in answer["unlisted"]} == (
                truth.unlisted
            )
    assert any(a["cards"] for e in doc["people"] for c, a in e["expected"].items() if c.startswith("5"))
