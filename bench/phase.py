"""Runs one side of the benchmark: a warm-up, then a measured phase of
queries at a fixed concurrency, bounded by a count and a time cap, with CPU
of the processes that matter sampled at the phase's edges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import psutil  # type: ignore[import-untyped]

from bench.stats import cpu_seconds

Job = TypeVar("Job")


class CpuMeter:
    """CPU seconds (user + system) a process spent between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._start = 0.0
        self.seconds = 0.0

    def start(self) -> None:
        self._start = cpu_seconds(self._process.cpu_times())

    def stop(self) -> None:
        self.seconds = cpu_seconds(self._process.cpu_times()) - self._start


@dataclass
class PhaseOutcome:
    latencies_s: list[float] = field(default_factory=list)
    failed: int = 0
    first_error: str = ""
    wall_s: float = 0.0


async def _run_jobs(
    jobs: Sequence[Job],
    concurrency: int,
    one: Callable[[Job], Awaitable[float]],
    outcome: PhaseOutcome,
    deadline: float,
) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue and time.monotonic() < deadline:
            job = queue.pop()
            try:
                outcome.latencies_s.append(await one(job))
            except Exception as error:  # a failed query is counted and reported, not fatal
                outcome.failed += 1
                outcome.first_error = outcome.first_error or f"{type(error).__name__}: {error}"

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(jobs))):
            group.create_task(worker())


async def run_phase(
    jobs: Sequence[Job],
    *,
    warmup: int,
    concurrency: int,
    cap_s: float,
    one: Callable[[Job], Awaitable[float]],
    meters: Sequence[CpuMeter],
) -> PhaseOutcome:
    """`one(job)` runs one query and returns its latency in seconds. The first
    `warmup` jobs open channels and fill caches and are not measured; the
    rest are, until they are done or `cap_s` has passed (queries in flight
    then still finish and count)."""
    warm = PhaseOutcome()
    await _run_jobs(jobs[:warmup], concurrency, one, warm, time.monotonic() + cap_s)
    outcome = PhaseOutcome(first_error=f"warm-up: {warm.first_error}" if warm.first_error else "")
    for meter in meters:
        meter.start()
    started = time.monotonic()
    await _run_jobs(jobs[warmup:], concurrency, one, outcome, started + cap_s)
    outcome.wall_s = time.monotonic() - started
    for meter in meters:
        meter.stop()
    return outcome
