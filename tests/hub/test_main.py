"""`cardlookup-hub` as an operator runs it (docs/hub-engine.md): the example
configuration starts a hub whose health answers over mTLS and on the
plaintext port (checked with docs/examples/check_health.py), SIGTERM stops it
with status 0; bad files and unusable keys end it with one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from cardlookup.pki import PkiPaths
from tests.hub.test_config_file import EXAMPLE, ROOT, example_dir

HUB = Path(sys.executable).parent / "cardlookup-hub"
CHECK_HEALTH = ROOT / "docs" / "examples" / "check_health.py"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_help_lists_every_documented_option() -> None:
    result = run(str(HUB), "--help")
    assert result.returncode == 0
    options = ("--config", "--log-level", "--without-api", "--grace", "--port-file")
    for option in options:
        assert option in result.stdout
    doc = (ROOT / "docs" / "hub-engine.md").read_text(encoding="utf-8")
    for option in options:
        assert f"`{option}" in doc


def test_a_bad_config_file_exits_2_with_one_line(tmp_path: Path, pki: PkiPaths) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("report_window =", "report_windw =")
    path = example_dir(tmp_path, pki, text)
    result = run(str(HUB), "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cardlookup-hub: {path}: timings.report_windw: unknown key (allowed: "
        + result.stderr.split("(allowed: ", 1)[1].strip()
    )
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_an_unusable_key_file_exits_1_naming_the_key(tmp_path: Path, pki: PkiPaths) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("pki/keys/index.hex", "pki/ca.pem")
    path = example_dir(tmp_path, pki, text)
    env = {**os.environ, "CARDLOOKUP_HUB_LISTEN": "127.0.0.1:0", "CARDLOOKUP_HUB_HEALTH_LISTEN": ""}
    result = run(str(HUB), "--config", str(path), "--log-level", "ERROR", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"cardlookup-hub: keys.index_key: {pki.root.resolve() / 'ca.pem'} does not hold a usable key"
    ]


def test_an_unusable_face_provider_key_exits_1_naming_the_key(tmp_path: Path, pki: PkiPaths) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("pki/keys/face-provider.pub", "pki/keys/kek.hex")
    path = example_dir(tmp_path, pki, text)
    env = {**os.environ, "CARDLOOKUP_HUB_LISTEN": "127.0.0.1:0", "CARDLOOKUP_HUB_HEALTH_LISTEN": ""}
    result = run(str(HUB), "--config", str(path), "--log-level", "ERROR", env=env)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("cardlookup-hub: keys.face_provider_keys.") and line.endswith("does not hold a usable key")


def log_records(log: Path) -> list[dict[str, object]]:
    """The hub's JSON log lines (gRPC's C core may add its own plain lines)."""
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def wait_for_event(log: Path, event: str, process: asyncio.subprocess.Process) -> dict[str, object]:
    for _ in range(600):
        for record in log_records(log):
            if record.get("event") == event:
                return record
        assert process.returncode is None, log_records(log)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {event} in {log_records(log)}")


async def check_health(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(CHECK_HEALTH), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_documented_example_runs_answers_health_and_stops_on_sigterm(tmp_path: Path, pki: PkiPaths) -> None:
    path = example_dir(tmp_path, pki)
    log = tmp_path / "hub.log"
    # The example's fixed ports, moved to free ones through the documented overrides.
    env = {**os.environ, "CARDLOOKUP_HUB_LISTEN": "127.0.0.1:0", "CARDLOOKUP_HUB_HEALTH_LISTEN": "127.0.0.1:0"}
    with log.open("wb") as err:
        hub = await asyncio.create_subprocess_exec(
            *(str(HUB), "--config", str(path), "--port-file", str(tmp_path / "ports.json")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        serving = await wait_for_event(log, "hub_serving", hub)
        port, health_port = serving["port"], serving["health_port"]
        assert isinstance(port, int) and isinstance(health_port, int) and port and health_port
        assert serving["banks"] == 2
        code, out = await check_health(f"127.0.0.1:{port}", "--pki", str(tmp_path / "pki"))
        assert code == 0 and out.splitlines() == ["(hub): SERVING", "cardlookup.hub.v1.CardLookupService: SERVING"]
        code, out = await check_health(f"127.0.0.1:{health_port}", "--plaintext")
        assert code == 0 and "(hub): SERVING" in out
        # Only health on the plaintext port: the API is mTLS-only.
        code, out = await check_health(f"127.0.0.1:{port}", "--plaintext")
        assert code == 1 and "UNAVAILABLE" in out
        assert (tmp_path / "var" / "hub.db").is_file()  # database = "var/hub.db", relative to the file
        hub.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(hub.wait(), 30) == 0
        events = [record["event"] for record in log_records(log)]
        assert events[-3:] == ["hub_stopping", "engine_stopped", "hub_stopped"]
        ports = json.loads((tmp_path / "ports.json").read_text())  # --port-file: what it bound
        assert ports == {"port": port, "health_port": health_port, "admin_port": 0, "metrics_port": 0}
    finally:
        if hub.returncode is None:
            hub.kill()
            await hub.wait()


async def test_sighup_reloads_the_file_and_a_bad_file_changes_nothing(tmp_path: Path, pki: PkiPaths) -> None:
    path = example_dir(tmp_path, pki)
    log = tmp_path / "hub.log"
    env = {**os.environ, "CARDLOOKUP_HUB_LISTEN": "127.0.0.1:0", "CARDLOOKUP_HUB_HEALTH_LISTEN": ""}
    with log.open("wb") as err:
        hub = await asyncio.create_subprocess_exec(
            str(HUB), "--config", str(path), stdout=asyncio.subprocess.DEVNULL, stderr=err, env=env
        )
    try:
        await wait_for_event(log, "hub_serving", hub)
        original = path.read_text(encoding="utf-8")
        path.write_text(original + '\n[[banks]]\ncode = "104"\naddress = "127.0.0.1:7102"\n', encoding="utf-8")
        hub.send_signal(signal.SIGHUP)
        await wait_for_event(log, "hub_reloaded", hub)
        changes = [r["change"] for r in log_records(log) if r.get("event") == "reload_applied"]
        assert "banks: added 104" in changes
        path.write_text(original.replace("report_window =", "report_windw ="), encoding="utf-8")
        hub.send_signal(signal.SIGHUP)
        refused = await wait_for_event(log, "reload_refused", hub)
        assert refused["error_type"] == "ConfigError" and "timings.report_windw: unknown key" in str(refused["problem"])
        assert str(path) not in str(refused["problem"])
        assert hub.returncode is None  # still serving
        hub.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(hub.wait(), 30) == 0
    finally:
        if hub.returncode is None:
            hub.kill()
            await hub.wait()
