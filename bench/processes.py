"""The processes under test, started through devstack.localstack (as the demo
starts them) with the benchmark's settings: a population large enough for
every measured user, hub timings for a saturated machine, a chosen log level."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from cardlookup.pki import PkiPaths
from devstack import localstack
from hub.core.config import HubConfig, Timings

HUB_TIMINGS = Timings(
    # A bank stream under a saturated 2-core machine can take seconds at 1,000
    # banks; a short deadline would turn load into retries and skew the figures.
    attempt_timeout=dt.timedelta(seconds=120),
    lease_duration=dt.timedelta(seconds=120),  # at least attempt_timeout (docs/configuration.md)
    retry_initial=dt.timedelta(seconds=0.2),
    retry_max=dt.timedelta(seconds=2),
)


def start_banks(
    pki: PkiPaths, count: int, population_size: int, work: Path, latency_ms: tuple[float, float] | None = None
) -> tuple[localstack.Process, Path]:
    """Starts the fleet; returns the process and the addresses file it will
    write. With `latency_ms` = (lo, hi), every call of every bank waits a
    uniform lo..hi ms before answering (the simulator's latency faults)."""
    addresses = work / "banks.json"
    extra: tuple[str, ...] = ("--population-size", str(population_size))
    if latency_ms is not None:
        lo, hi = latency_ms
        config = work / "banks.toml"
        config.write_text(
            f"[defaults.faults]\nlatency = {lo / 1000:.3f}\nlatency_jitter = {(hi - lo) / 1000:.3f}\n",
            encoding="utf-8",
        )
        extra += ("--config", str(config))
    process = localstack.start_banks(pki, count, addresses, work / "banks.log", extra)
    return process, addresses


async def wait_for_file(path: Path, process: localstack.Process, what: str, log: Path) -> None:
    await asyncio.to_thread(localstack.wait_for_file, path, process, what, log)


def write_hub_config(
    path: Path,
    pki: PkiPaths,
    port: int,
    banks: dict[str, str],
    work: Path,
    database: str | None = None,
    session: str = "off",
) -> None:
    """The development configuration; its store is SQLite in `work` unless
    `database` (a postgresql:// URL) is given; every bank's `session` mode
    is `session` (issue 16: the bank session stream)."""
    overrides = {"database": database} if database else {}
    config = HubConfig.dev(pki, banks, work, listen=f"127.0.0.1:{port}", timings=HUB_TIMINGS, **overrides)
    config = dataclasses.replace(config, banks=tuple(dataclasses.replace(b, session=session) for b in config.banks))
    path.write_text(config.to_toml(), encoding="utf-8")


PROFILE_ENV = "BENCH_HUB_PROFILE"
"""Set to a directory: the hub runs under cProfile and writes
hub-<pid>.prof there when it stops (SIGTERM ends it cleanly)."""


def start_hub(config: Path, log_level: str, work: Path) -> localstack.Process:
    log = work / "hub.log"
    profile_dir = os.environ.get(PROFILE_ENV)
    if not profile_dir:
        return localstack.start_hub(config, log, ("--log-level", log_level))
    localstack.port_file(log).unlink(missing_ok=True)
    out = Path(profile_dir) / f"hub-{work.name}-{os.getpid()}.prof"
    with log.open("wb") as sink:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "cProfile", "-o", str(out), "-m", "hub.process.main"),
                *("--config", str(config), "--port-file", str(localstack.port_file(log)), "--log-level", log_level),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
