"""The replica demo's command, end to end (issue 8): three replica
processes on a throwaway PostgreSQL, one SIGKILLed while it holds bank
calls, its banks taken over, every report matching the ground truth."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_replica_demo_kills_one_replica_and_every_report_is_exact() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.replica_demo", "--users", "4"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert re.search(r"SIGKILL replica B while it held \d+ bank calls", out)
    assert re.search(r"its banks were taken over in \d+\.\d\d s", out)
    assert "overlapping calls of one query at one bank: 0" in out
    assert out.count("matches the ground truth") == 4
    assert out.count("ready SMS x1") == 4
    assert "replica demo passed" in out
