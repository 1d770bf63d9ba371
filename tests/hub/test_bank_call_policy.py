"""The bank-call policy (issue 20): one value, validated once, its
documented table equal to the dataclass, and every bank call using it."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import random
import re
from pathlib import Path

import pytest

from hub.core.backoff import Backoff
from hub.core.config import BankEndpoint, Timings
from hub.fanout.channels import channel_options
from hub.fanout.policy import HANDOVER_MARGIN, TIMING_KEYS, BankCallPolicy

DOC = Path(__file__).resolve().parents[2] / "docs" / "hub-engine.md"
ROW = re.compile(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|")


def _documented() -> dict[str, tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### The bank-call policy", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[match[1]] = (match[2].strip(), match[3].strip())
    return rows


def test_the_documented_table_is_the_dataclass() -> None:
    rows = _documented()
    fields = {f.name: f.default for f in dataclasses.fields(BankCallPolicy)}
    assert list(rows) == list(fields)  # every field, in the dataclass's order
    for name, default in fields.items():
        shown, key = rows[name]
        assert float(shown) == default, name
        expected = TIMING_KEYS.get(name, "—")
        if name == "handover_wait":
            expected += f" + {HANDOVER_MARGIN:g}"
        assert key.replace("`", "") == expected, name


def test_the_default_timings_make_the_default_policy() -> None:
    assert BankCallPolicy.from_timings(Timings()) == BankCallPolicy()


def test_each_use_of_the_attempt_timeout_is_a_field_of_its_own() -> None:
    policy = BankCallPolicy.from_timings(Timings(attempt_timeout=dt.timedelta(seconds=7)))
    assert (policy.attempt_timeout, policy.case_timeout, policy.channel_grace, policy.connect_timeout) == (7.0,) * 4
    assert policy.handover_wait == 7.0 + HANDOVER_MARGIN


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attempt_timeout": 0.0}, "attempt_timeout (timings.attempt_timeout): must be positive, got 0.0"),
        ({"max_backoff": 0.5}, "max_backoff (timings.retry_max): must be at least initial_backoff, got 0.5"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier (timings.retry_multiplier): must be at least 1, got 0.5"),
        ({"jitter": 1.5}, "jitter: must be between 0 and 1, got 1.5"),
        ({"breaker_failures": 0}, "breaker_failures (timings.breaker_failures): must be an integer of at least 1"),
        ({"identity_failures": 2.5}, "identity_failures: must be an integer of at least 1"),
        ({"handover_wait": 1.0}, "handover_wait (timings.attempt_timeout): must be at least attempt_timeout"),
        ({"session_cooloff": float("nan")}, "session_cooloff: must be a finite number"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_field_and_its_key(
    change: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=r"^bank call policy: ") as refused:
        BankCallPolicy(**change)  # type: ignore[arg-type]
    text = str(refused.value)
    assert message in text and "\n" not in text


def test_the_policys_backoff_is_equal_jitter_doubled_when_the_bank_asks_to_slow_down() -> None:
    backoff = BankCallPolicy(initial_backoff=1.0, max_backoff=60.0).backoff
    rng = random.Random(5)
    for failures, step in [(1, 1.0), (3, 4.0), (7, 60.0)]:
        delays = {backoff.delay(failures, rng) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays) and len(delays) > 1
    assert all(2.0 / 2 <= backoff.delay(1, rng, slow_down=True) <= 2.0 for _ in range(20))
    assert BankCallPolicy(jitter=0.0).backoff.delay(2, rng) == 2.0  # no jitter: the step itself


def test_the_store_write_retry_uses_the_same_backoff_without_jitter() -> None:
    from hub.engine.batches import STORE_RETRY

    assert isinstance(STORE_RETRY, Backoff)
    assert [STORE_RETRY.delay(n) for n in (1, 2, 3, 7, 20)] == [0.05, 0.1, 0.2, 2.0, 2.0]


def test_the_store_retries_use_the_same_backoff() -> None:
    """The PostgreSQL store's two waits (issue 20: no hand-written loop of
    its own): re-listening after a lost connection, 0.1 s doubling to 5 s,
    and re-running a transaction that hit a serialization failure, 2 ms
    doubling to 16 ms, half of it random."""
    from hub.store.pg_listen import RELISTEN_BACKOFF
    from hub.store.postgres import _TX_RETRY

    assert isinstance(RELISTEN_BACKOFF, Backoff) and isinstance(_TX_RETRY, Backoff)
    assert [RELISTEN_BACKOFF.delay(n) for n in (1, 2, 3, 6, 7, 30)] == pytest.approx([0.1, 0.2, 0.4, 3.2, 5.0, 5.0])
    rng = random.Random(7)
    for failures, step in [(1, 0.002), (2, 0.004), (4, 0.016), (7, 0.016)]:
        delays = {_TX_RETRY.delay(failures, rng) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays) and len(delays) > 1


def test_no_bank_call_reads_the_timings_of_a_call_itself() -> None:
    """The numbers of a bank call come from the policy only (issue 20 found
    `attempt_timeout` read four ways and retry numbers written into five
    loops): no `<...>.timings.<a policy key>` in the fan-out or the engine."""
    root = Path(__file__).resolve().parents[2] / "hub"
    readers = [root / "fanout" / name for name in ("caller.py", "retry.py", "channels.py", "session.py", "cases.py")]
    readers += [root / "fanout" / "lanes.py", *sorted((root / "engine").glob("*.py"))]
    keys = {key.removeprefix("timings.") for key in TIMING_KEYS.values()}
    found = []
    for path in readers:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in keys:
                owner = node.value
                if (isinstance(owner, ast.Attribute) and owner.attr == "timings") or (
                    isinstance(owner, ast.Name) and owner.id == "timings"
                ):
                    found.append(f"{path.name}:{node.lineno} timings.{node.attr}")
    assert found == []


def test_the_fan_out_prose_states_the_policys_defaults() -> None:
    """docs/hub-engine.md tells these numbers in words; they follow the policy."""
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    policy = BankCallPolicy()
    words = {1: "", 2: "doubles", 3: "3", 60: "a minute", 600: "10 minutes"}
    assert f"after {words[policy.identity_failures]} such handshakes in a row" in text
    assert f"`RESOURCE_EXHAUSTED` {words[int(policy.slow_down_factor)]} the next backoff step" in text
    assert f"asked again every {words[int(policy.session_reprobe)]}" in text
    assert f"called per call for {words[int(policy.session_cooloff)]}" in text
    assert f"(at most `attempt_timeout` + {HANDOVER_MARGIN:g} s)" in text


def test_a_banks_channel_gets_the_connect_timeout_and_the_backoff_from_the_policy() -> None:
    """grpc's `min_reconnect_backoff_ms` is its minimum connect timeout: the
    policy's `connect_timeout`, never the first backoff step (20 ms here:
    a TLS handshake on a loaded machine takes longer)."""
    policy = BankCallPolicy.from_timings(
        Timings(retry_initial=dt.timedelta(milliseconds=20), attempt_timeout=dt.timedelta(seconds=7))
    )
    options = dict(channel_options(BankEndpoint("102", "Bank", "Bank", "127.0.0.1:1"), policy))
    assert options["grpc.min_reconnect_backoff_ms"] == 7000
    assert options["grpc.initial_reconnect_backoff_ms"] == 20
