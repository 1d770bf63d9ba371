"""`bench.fanout --bank-sessions both` runs end to end at a tiny size: the
per-call hub, then a hub over bank session streams (issue 16), then the
baseline, against the same bank processes. Speed is not asserted: this
proves the session path works between real hub and bank processes and the
figures are printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(
    r"^(hub\+session|hub|baseline)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)$"
)
RATIOS = r"\s+[\d.]+x" * 5 + "$"


def test_fanout_benchmark_with_bank_sessions_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = subprocess.run(
        [
            sys.executable,
            "bench/fanout.py",
            *("--banks", "16", "--queries", "6", "--warmup", "2", "--concurrency", "3"),
            *("--journey-costs", "0", "--rss-journeys", "0", "--bank-sessions", "both"),
            *("--duration-cap", "60", "--json", str(out), "--pki", str(tmp_path / "pki")),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {m.group(1): m.groups()[1:] for line in run.stdout.splitlines() if (m := ROW.match(line.strip()))}
    assert set(rows) == {"hub", "hub+session", "baseline"}, run.stdout
    assert all(r[-2:] == ("6", "0") for r in rows.values()), rows
    for label in ("hub/baseline", "session/base", "session/hub"):
        assert re.search(rf"^{re.escape(label)}{RATIOS}", run.stdout, re.M), run.stdout
    [result] = json.loads(out.read_text())
    assert result["hub_session"]["queries"] == 6 and result["hub_session"]["failed"] == 0
    assert result["errors"] == {}
