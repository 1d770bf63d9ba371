"""Backoff, circuit breaker and the classification of bank errors."""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest

from cardlookup.pki import PkiPaths
from cardlookup.rpc_errors import make_status
from hub.core.backoff import Backoff
from hub.fanout.breaker import BreakerState, CircuitBreaker
from hub.fanout.caller import Rejected, Transient, classify, safe_reason
from hub.fanout.lanes import Fanout
from tests.hub.helpers import hub_config


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0, multiplier=2.0)
    rng = random.Random(3)
    for failures, step in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (30, 60.0)]:
        delays = {backoff.delay(failures, rng) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered
    assert 2.0 / 2 <= backoff.delay(1, rng, slow_down=True) <= 2.0


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_after_consecutive_failures_and_probes_after_reset() -> None:
    now = FakeTime()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=30.0, now=now)
    for _ in range(2):
        assert breaker.before_call() == 0.0
        breaker.on_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.on_success()  # a success resets the count
    for _ in range(3):
        assert breaker.before_call() == 0.0
        breaker.on_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.before_call() == pytest.approx(30.0)
    now.t += 29
    assert breaker.before_call() == pytest.approx(1.0)
    now.t += 1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.before_call() == 0.0  # the one probe
    assert breaker.before_call() > 0  # others wait for the probe's verdict
    breaker.on_failure()  # the probe failed: open again for a full period
    assert breaker.state is BreakerState.OPEN
    assert breaker.times_opened == 2
    now.t += 30
    assert breaker.before_call() == 0.0
    breaker.on_abandon()  # a cancelled probe frees the slot
    assert breaker.before_call() == 0.0
    breaker.on_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.before_call() == 0.0


def rpc_error(code: grpc.StatusCode, details: str, reason: str | None = None) -> grpc.aio.AioRpcError:
    """The error a grpc.aio call raises, with the bank's ErrorInfo trailer."""
    trailers = grpc.aio.Metadata()
    if reason:
        status = make_status(code, reason, details, "cardlookup.bank.v1")
        for key, value in status.trailing_metadata:
            trailers.add(key, value)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details)


@pytest.mark.parametrize(
    ("code", "details", "reason", "expected"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "x", "CONSENT_EXPIRED", Rejected("BANK_REFUSED:CONSENT_EXPIRED")),
        (grpc.StatusCode.PERMISSION_DENIED, "x", None, Rejected("BANK_REFUSED:PERMISSION_DENIED")),
        (grpc.StatusCode.INVALID_ARGUMENT, "x", "bad reason 110101199001011234", Rejected("BANK_REFUSED:UNSPECIFIED")),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Received message larger than max (5 vs. 1)",
            None,
            Rejected("MESSAGE_TOO_LARGE"),
        ),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", None, Transient("RESOURCE_EXHAUSTED", slow_down=True)),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect: Hostname Verification Check failed.",
            None,
            Transient("WRONG_BANK_CERTIFICATE", identity=True),
        ),
        (grpc.StatusCode.UNAVAILABLE, "connection refused", None, Transient("UNAVAILABLE")),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline", None, Transient("DEADLINE_EXCEEDED")),
        (grpc.StatusCode.NOT_FOUND, "?", None, Transient("NOT_FOUND")),
    ],
)
def test_bank_errors_are_classified(
    code: grpc.StatusCode, details: str, reason: str | None, expected: Rejected | Transient
) -> None:
    assert classify(rpc_error(code, details, reason)) == expected


def test_bank_supplied_reasons_are_kept_only_if_they_are_tokens() -> None:
    assert safe_reason("CONSENT_EXPIRED") == "CONSENT_EXPIRED"
    assert safe_reason("张三") == "UNSPECIFIED"
    assert safe_reason("A" * 100) == "UNSPECIFIED"


async def test_a_fanouts_breakers_follow_the_clock_it_is_given(pki: PkiPaths, tmp_path: Path) -> None:
    now = FakeTime()
    now.t = 0.0  # exact sums below
    fanout = Fanout(hub_config(pki, {"102": "127.0.0.1:1"}, tmp_path), now=now)
    try:
        breaker = fanout.lane("102").breaker
        for _ in range(fanout.policy.breaker_failures):
            breaker.on_failure()
        assert breaker.state is BreakerState.OPEN
        opened, reset = now.t, fanout.policy.breaker_reset
        now.t = opened + reset / 2
        assert breaker.state is BreakerState.OPEN and breaker.open_for() == pytest.approx(reset / 2)
        now.t = opened + reset  # no real time passed: only the injected clock moved
        assert breaker.state is BreakerState.HALF_OPEN
    finally:
        await fanout.close()
