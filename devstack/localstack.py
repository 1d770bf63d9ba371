"""A local stack as separate processes: the bank fleet (`cardlookup-banks`)
and the hub (`cardlookup-hub --config`), each with its output in a log file.
The end-to-end demo and the benchmark both run on it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cardlookup.pki import PkiPaths
from hub.core.config import HubConfig, Timings

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0

Process = subprocess.Popen[bytes]


def command(name: str) -> list[str]:
    """A console script of this installation (next to this Python first)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed (pip install -e .)")
    return [found]


def log_tail(path: Path, lines: int = 10) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_banks(
    pki: PkiPaths, count: int, addresses: Path, log: Path, extra: Sequence[str] = (), admin: bool = False
) -> Process:
    """Starts `count` simulated banks; they write `addresses` once serving.
    With `admin`, their admin API runs too (fault switches)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                *command("cardlookup-banks"),
                *("--pki", str(pki.root), "--count", str(count)),
                *(() if admin else ("--no-admin",)),
                *("--addresses-out", str(addresses)),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for_file(path: Path, process: Process, what: str, log: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Waits for `process` to write `path`; raises RuntimeError (with the
    log's last lines) if it exits or takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout_s:.0f} s")
        time.sleep(0.05)


def port_file(log: Path) -> Path:
    """Where start_hub has the hub write its bound ports (beside its log)."""
    return log.with_name(log.name + ".ports.json")


def wait_for_hub(log: Path, process: Process, timeout_s: float = START_TIMEOUT_S) -> int:
    """Waits for a hub that start_hub started (logging to `log`) to serve;
    returns the port it bound (a config may listen on port 0: the hub
    writes its ports to port_file(log), whatever its log level)."""
    wait_for_file(port_file(log), process, "cardlookup-hub", log, timeout_s)
    return hub_ports(log)["port"]


def hub_ports(log: Path) -> dict[str, int]:
    """The ports a serving hub bound: port, health_port, admin_port,
    metrics_port (0: not configured)."""
    ports: dict[str, int] = json.loads(port_file(log).read_text())
    return ports


def pin_bound_port(config: Path, log: Path, process: Process, timeout_s: float = START_TIMEOUT_S) -> int:
    """For a hub whose `config` listens on port 0: waits until it serves,
    rewrites `config` to listen on the port it bound (a restart comes back
    on the same address; clients hold it) and returns that port."""
    port = wait_for_hub(log, process, timeout_s)
    hub = HubConfig.from_file(config)
    host = hub.listen.rsplit(":", 1)[0]
    config.write_text(dataclasses.replace(hub, listen=f"{host}:{port}").to_toml(), encoding="utf-8")
    return port


def read_addresses(path: Path) -> dict[str, str]:
    banks: dict[str, str] = json.loads(path.read_text())["banks"]
    return banks


def write_hub_config(
    path: Path, pki: PkiPaths, port: int, banks: dict[str, str], work: Path, timings: Timings | None = None
) -> None:
    """The development configuration over `pki`, listening on `port` (0: a
    free one, which the hub reports; see wait_for_hub), with its database and
    SMS outbox in `work`."""
    config = HubConfig.dev(pki, banks, work, listen=f"127.0.0.1:{port}", timings=timings or Timings())
    path.write_text(config.to_toml(), encoding="utf-8")


def start_hub(config: Path, log: Path, extra: Sequence[str] = ()) -> Process:
    """Starts `cardlookup-hub`; it writes its bound ports to port_file(log)
    once serving (wait_for_hub)."""
    port_file(log).unlink(missing_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command("cardlookup-hub"), "--config", str(config), "--port-file", str(port_file(log)), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: Process | None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, then SIGKILL if it does not exit in time. True if it had to
    be killed."""
    if process is None or process.poll() is not None:
        return False
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
        return False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return True
