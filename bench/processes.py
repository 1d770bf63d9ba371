"""The processes under test: the bank fleet (`cardlookup-banks`) and the hub
(`cardlookup-hub --config`), each started as its own OS process with its
output in a log file, and always stopped (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cardlookup.pki import PkiPaths
from hub.config import HubConfig, Timings

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
HUB_TIMINGS = Timings(
    # A bank stream under a saturated 2-core machine can take seconds at 1,000
    # banks; a short deadline would turn load into retries and skew the figures.
    attempt_timeout=dt.timedelta(seconds=120),
    retry_initial=dt.timedelta(seconds=0.2),
    retry_max=dt.timedelta(seconds=2),
)


def command(name: str) -> list[str]:
    """A console script of this installation (next to this Python first)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench: {name} is not installed (pip install -e .)")
    return [found]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 10) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def wait_for_file(path: Path, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not await asyncio.to_thread(path.exists):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.05)


def start_banks(pki: PkiPaths, count: int, population_size: int, work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Starts the fleet; returns the process and the addresses file it will write."""
    addresses = work / "banks.json"
    log = work / "banks.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *command("cardlookup-banks"),
                *("--pki", str(pki.root), "--count", str(count), "--no-admin"),
                *("--population-size", str(population_size), "--addresses-out", str(addresses)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, addresses


def read_addresses(path: Path) -> dict[str, str]:
    banks: dict[str, str] = json.loads(path.read_text())["banks"]
    return banks


def write_hub_config(path: Path, pki: PkiPaths, port: int, banks: dict[str, str], work: Path) -> None:
    config = HubConfig.dev(pki, banks, work, listen=f"127.0.0.1:{port}", timings=HUB_TIMINGS)
    path.write_text(config.to_toml(), encoding="utf-8")


def start_hub(config: Path, log_level: str, work: Path) -> subprocess.Popen[bytes]:
    with (work / "hub.log").open("wb") as out:
        return subprocess.Popen(
            [*command("cardlookup-hub"), "--config", str(config), "--log-level", log_level],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
