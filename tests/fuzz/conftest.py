"""Property-based tests (hypothesis) of the hub from outside: every API
method with generated inputs and raw invalid bytes, and a hostile bank
whose streamed messages hypothesis draws.

Profiles (select with HYPOTHESIS_PROFILE):
  ci    (default) a few seconds per test, derandomized so CI is repeatable;
  long  the documented long run (docs/reliability.md), >= 10,000 inputs in all.

The hub and its banks run in a background event-loop thread for a whole
module (hypothesis calls a test body once per example; one hub serves all
of them), so the examples reach a real grpc.aio hub over real mTLS.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

T = TypeVar("T")

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
}
settings.register_profile("ci", max_examples=30, derandomize=True, database=None, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("long", max_examples=800, database=None, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def scaled(n: int) -> int:
    """`n` examples in the ci profile, scaled like the profile's own count."""
    return max(1, n * settings().max_examples // 30)


INPUTS: Counter[str] = Counter()
"""Generated inputs sent, per property (the figures docs/reliability.md quotes)."""


def count(name: str) -> None:
    INPUTS[name] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if INPUTS:
        profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
        terminalreporter.write_line(f"fuzz inputs ({profile} profile): {sum(INPUTS.values())} in all")
        for name, n in sorted(INPUTS.items()):
            terminalreporter.write_line(f"  {n:6d}  {name}")


class LoopThread:
    """An asyncio loop in a daemon thread; `run` waits for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
