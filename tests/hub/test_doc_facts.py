"""Issue 18 item 4: facts the docs state that can drift from the code or the
data: the example user's banks, the argon2id parameters, what
`max_concurrent` caps, and how error metadata times are rounded."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.population import Population
from hub.identity.errors import rfc3339
from hub.identity.passwords import DEFAULT_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]


def doc(name: str) -> str:
    return re.sub(r"\s+", " ", (ROOT / name).read_text(encoding="utf-8"))


def test_the_example_user_holds_cards_where_the_doc_says() -> None:
    text = doc("docs/app-backend.md")
    match = re.search(
        r"population user `(u\d+)` \(region (\d+); the simulated banks hold cards of theirs at (\d+) of the 16 banks,"
        r" and the examples choose two of them, (\d+) and (\d+);",
        text,
    )
    assert match, "docs/app-backend.md names the example user and their banks"
    user_id, region, count, first, second = match.groups()
    population = Population()
    person = population.person(user_id)
    holding = [c for c in DEFAULT_BANK_CODES if population.cards_at(c, person.id_number)]
    assert person.region_code == region
    assert int(count) == len(holding)
    assert {first, second} <= set(holding)
    assert f"--banks {first},{second}" in (ROOT / "docs" / "examples" / "app_sync.py").read_text()


def test_the_argon2id_parameters_are_the_codes_everywhere() -> None:
    p = DEFAULT_PARAMETERS
    mib = p.memory_cost // 1024
    assert f"m = {mib} MiB, t = {p.time_cost}, p = {p.parallelism}" in doc("docs/app-backend.md")
    security = doc("docs/security.md")
    assert f"argon2id (m = {mib} MiB, t = {p.time_cost}, p = {p.parallelism};" in security
    assert f"argon2id makes each guess cost {mib} MiB" in security
    for name in ("docs/app-backend.md", "docs/security.md"):
        for t, m, par in re.findall(r"t ?= ?(\d+), m ?= ?(\d+) MiB, p ?= ?(\d+)", doc(name)):
            assert (int(t), int(m), int(par)) == (p.time_cost, mib, p.parallelism), name
        for m, t, par in re.findall(r"m ?= ?(\d+) MiB, t ?= ?(\d+), p ?= ?(\d+)", doc(name)):
            assert (int(t), int(m), int(par)) == (p.time_cost, mib, p.parallelism), name


def test_max_concurrent_is_documented_as_shared_by_all_replicas() -> None:
    # The code (issue 16): the bank's lane owner makes every call to it and holds
    # the cap in memory, proven held by two replicas in tests/replicas/test_bank_lanes.py.
    for name in ("docs/configuration.md", "docs/hub-engine.md", "docs/examples/hub.toml"):
        text = doc(name)
        for line in re.findall(r"[^|#\n]*max_concurrent[^\n]*", (ROOT / name).read_text(encoding="utf-8")):
            assert "per hub process" not in line, (name, line)
        assert "all hub replicas together" in text or "all replicas together" in text, name
    assert "a bank's `max_concurrent`, and its breaker | in the memory of the bank's lane owner" in doc(
        "docs/deployment.md"
    )


def test_error_metadata_times_are_whole_seconds_rounded_up() -> None:
    when = dt.datetime(2026, 1, 12, 9, 0, 0, 1000, tzinfo=dt.UTC)
    assert rfc3339(when) == "2026-01-12T09:00:01Z"
    assert rfc3339(when.replace(microsecond=0)) == "2026-01-12T09:00:00Z"
    assert "rounded **up** to a whole second" in doc("docs/app-backend.md")
    assert "rounded UP to a whole second" in doc("protos/cardlookup/hub/v1/error_reason.proto")
