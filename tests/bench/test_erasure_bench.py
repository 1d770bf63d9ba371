"""bench.erasure runs end to end at a tiny size on SQLite and prints its
figures (speed is not asserted)."""

from __future__ import annotations

import re
from pathlib import Path

from bench.erasure import measure


async def test_the_erasure_benchmark_runs(tmp_path: Path) -> None:
    line = await measure(tmp_path / "hub.db", users=50, closures=3)
    assert re.fullmatch(
        r"sqlite: 50 users; sweep with nothing due [\d.]+ ms; closure median [\d.]+ ms \(max [\d.]+\);"
        r" purge after each \(SQLite: WAL checkpoint\) median [\d.]+ ms; rewrite after 0 closures \d+ ms",
        line,
    ), line
