"""Issue 18 item 6: the quick-start of docs/hub-engine.md ("Running a hub")
runs as written, and a shared machine moves its only fixed ports in one
place (step 0): the test sets HUB_PORT and HEALTH_PORT to free ports and
runs the documented block in bash, in a scratch directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cardlookup.devpg import free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "hub-engine.md").read_text(encoding="utf-8")


def quickstart() -> str:
    block = re.search(r"## Running a hub\n.*?```sh\n(.*?)```", DOC, re.S)
    assert block
    return block.group(1)


def test_the_quickstart_names_no_fixed_port_outside_step_0() -> None:
    lines = quickstart().splitlines()
    assert lines[0].startswith(': "${HUB_PORT:=') and "HEALTH_PORT" in lines[0]
    for line in lines[1:]:
        assert not re.search(r":\d{4,5}\b|--base-port|--admin-port", line), line


def test_the_quickstart_runs_as_written_on_moved_ports(tmp_path: Path) -> None:
    # Numbers ahead: the quick start's step 0 sets fixed ports, which is what a reader types.
    hub_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "REPO": str(ROOT),
        "HUB_PORT": str(hub_port),
        "HEALTH_PORT": str(health_port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GRPC_VERBOSITY": "NONE",
    }
    script = "set -e\n" + quickstart()
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(hub): SERVING\ncardlookup.hub.v1.CardLookupService: SERVING" in result.stdout
    assert "bank_sim stopped" in result.stdout
    hub_toml = (tmp_path / "hub.toml").read_text()
    assert hub_toml.count("[[banks]]") == 16
    log = result.stderr
    assert f'"port":{hub_port},"health_port":{health_port}' in log, log[-2000:]
