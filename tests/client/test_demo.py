"""The README's first command, end to end: separate processes for the PKI,
the banks and the hub; the report must match the ground truth."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    demo = Path(sys.executable).parent / "cardlookup-demo"
    command = [str(demo)] if demo.exists() else [shutil.which("cardlookup-demo") or "cardlookup-demo"]
    work = tmp_path / "demo"
    result = subprocess.run(
        [*command, "--workdir", str(work)], capture_output=True, text=True, timeout=110, env=None, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "The report matches the population's ground truth" in result.stdout
    assert "hub and banks stopped" in result.stdout
    assert not work.exists()  # cleaned up
