"""The processes under test, started through client.localstack (as the demo
starts them) with the benchmark's settings: a population large enough for
every measured user, hub timings for a saturated machine, a chosen log level."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from cardlookup.pki import PkiPaths
from client import localstack
from hub.config import Timings

HUB_TIMINGS = Timings(
    # A bank stream under a saturated 2-core machine can take seconds at 1,000
    # banks; a short deadline would turn load into retries and skew the figures.
    attempt_timeout=dt.timedelta(seconds=120),
    retry_initial=dt.timedelta(seconds=0.2),
    retry_max=dt.timedelta(seconds=2),
)


def start_banks(pki: PkiPaths, count: int, population_size: int, work: Path) -> tuple[localstack.Process, Path]:
    """Starts the fleet; returns the process and the addresses file it will write."""
    addresses = work / "banks.json"
    process = localstack.start_banks(
        pki, count, addresses, work / "banks.log", ("--population-size", str(population_size))
    )
    return process, addresses


async def wait_for_file(path: Path, process: localstack.Process, what: str, log: Path) -> None:
    await asyncio.to_thread(localstack.wait_for_file, path, process, what, log)


def write_hub_config(path: Path, pki: PkiPaths, port: int, banks: dict[str, str], work: Path) -> None:
    localstack.write_hub_config(path, pki, port, banks, work, HUB_TIMINGS)


def start_hub(config: Path, log_level: str, work: Path) -> localstack.Process:
    return localstack.start_hub(config, work / "hub.log", ("--log-level", log_level))
