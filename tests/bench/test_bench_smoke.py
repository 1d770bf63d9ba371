"""The benchmark runs end to end at a tiny size (16 banks, a handful of
queries) and prints well-formed figures. Speed is not asserted: this proves
the benchmark works (real bank and hub processes, the client journey, the
baseline process), not how fast anything is."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^(hub|baseline)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)$")


def test_fanout_benchmark_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = subprocess.run(
        [
            sys.executable,
            "bench/fanout.py",
            *("--banks", "16", "--queries", "6", "--warmup", "2", "--concurrency", "3"),
            *("--duration-cap", "60", "--json", str(out), "--pki", str(tmp_path / "pki")),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {m.group(1): m.groups()[1:] for line in run.stdout.splitlines() if (m := ROW.match(line.strip()))}
    assert set(rows) == {"hub", "baseline"}, run.stdout
    for name, (qps, p50, p99, cpu, bank_cpu, done, failed) in rows.items():
        assert float(qps) > 0 and float(cpu) > 0 and float(bank_cpu) > 0, name
        assert 0 < float(p50) <= float(p99), name
        assert (int(done), int(failed)) == (6, 0), name
    assert re.search(r"^hub/baseline\s+[\d.]+x\s+[\d.]+x\s+[\d.]+x\s+[\d.]+x\s+[\d.]+x$", run.stdout, re.M), run.stdout
    assert re.search(r"^\s+16\s+[\d.]+\s+[\d.]+\s+[\d.]+x", run.stdout, re.M), "no curve row for 16 banks"

    [result] = json.loads(out.read_text())
    for side in ("hub", "baseline"):
        figures = result[side]
        assert figures["banks"] == 16 and figures["queries"] == 6 and figures["failed"] == 0
        assert all(
            math.isfinite(figures[k]) and figures[k] > 0 for k in ("qps", "p50_ms", "p99_ms", "cpu_ms_per_query")
        )
    assert result["errors"] == {}


@pytest.mark.parametrize("sessions", ["off", "on"])
def test_capacity_benchmark_tiny_run(sessions: str) -> None:
    """bench.capacity at two tiny sizes: its per-query figures and the
    capacity table docs/deployment.md shows (its nine cells) come out, with
    the engine calling per call or over bank sessions."""
    run = subprocess.run(
        [
            *(sys.executable, "-m", "bench.capacity", "--banks", "4,8", "--queries", "16", "--concurrency", "2"),
            *("--bank-sessions", sessions),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"bank sessions {sessions}" in run.stdout
    rows = re.findall(r"^\s+(4|8)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", run.stdout, re.M)
    assert [r[0] for r in rows] == ["4", "8"], run.stdout
    for _banks, server_ms, hub_ms, trips, transactions, qps in rows:
        assert float(server_ms) > 0 and float(hub_ms) > 0 and float(trips) > 0 and float(transactions) > 0
        assert float(qps) > 0
    cells = re.findall(r"^\| ([\d,]+) \| ([\d,]+) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \| .+ \|$", run.stdout, re.M)
    assert cells == [(r, b) for b in ("16", "256", "1,000") for r in ("10", "100", "1,000")], run.stdout
