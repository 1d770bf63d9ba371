"""What each step of the user journey costs the hub, and the hub's memory
under concurrent full journeys (issue 10 item 4). Run by bench/fanout.py in
the hub phase, after the measured queries, against the same hub process.

- Step costs: `n` journeys one after another (nothing else running), the
  hub's CPU (psutil user + system) read at every step boundary: EnrollUser,
  StartVerification, CreateQuery (request -> response), the fan-out
  (response -> READY, seen by one WatchQuery), WatchQuery, GetReport.
  WatchQuery's own cost is measured apart by giving every second journey a
  second, identical watcher: its cost is the difference between the two
  kinds of journey's create->READY CPU; the fan-out is that interval less
  one watcher. psutil reads CPU in clock ticks (10 ms), so each figure is a
  sum over all journeys divided by their number.
- Peak RSS: `concurrent` full journeys at once (EnrollUser, verification,
  CreateQuery, WatchQuery to READY, GetReport), the hub's resident memory
  sampled every 20 ms from before the first call to after the last.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]

from bench.hub_driver import HubQueryDriver, enrol_one
from bench.stats import cpu_seconds
from cardlookup.population import Person
from client.aio import AsyncCardLookupClient

STEPS = ("EnrollUser", "StartVerification", "CreateQuery", "fan-out", "WatchQuery", "GetReport")


@dataclass(frozen=True)
class JourneyCosts:
    journeys: int
    cpu_ms: dict[str, float]
    """Hub CPU ms per call of each step (STEPS)."""


class RssSampler:
    """The peak resident set size of a process while it runs (20 ms samples)."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak_bytes = 0
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        try:
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
        except psutil.Error:
            pass

    async def _loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._sample()
        self._task = asyncio.create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self._sample()


async def step_costs(
    hub: AsyncCardLookupClient, driver: HubQueryDriver, hub_pid: int, people: Sequence[Person]
) -> JourneyCosts:
    process = psutil.Process(hub_pid)
    spent: dict[str, float] = defaultdict(float)
    create_to_ready = {1: [0.0, 0], 2: [0.0, 0]}

    def cpu() -> float:
        return float(cpu_seconds(process.cpu_times()))

    for i, person in enumerate(people):
        t = cpu()
        await enrol_one(hub, person)
        t, spent["EnrollUser"] = cpu(), spent["EnrollUser"] + cpu() - t
        verified = await driver.verify(person)
        now = cpu()
        spent["StartVerification"] += now - t
        t = now
        query_id = await driver.create(person, verified)
        now = cpu()
        spent["CreateQuery"] += now - t
        t = now
        watchers = 2 if i % 2 else 1
        await asyncio.gather(*(driver.watch(person, query_id) for _ in range(watchers)))
        now = cpu()
        create_to_ready[watchers][0] += now - t
        create_to_ready[watchers][1] += 1
        t = now
        await hub.get_report(person.user_id, query_id, person.payment_password)
        spent["GetReport"] += cpu() - t
    n = len(people)
    ms = {step: spent[step] * 1000 / n for step in ("EnrollUser", "StartVerification", "CreateQuery", "GetReport")}
    one = create_to_ready[1][0] * 1000 / max(1, int(create_to_ready[1][1]))
    two = create_to_ready[2][0] * 1000 / max(1, int(create_to_ready[2][1]))
    ms["WatchQuery"] = two - one
    ms["fan-out"] = one - ms["WatchQuery"]
    return JourneyCosts(n, {step: ms[step] for step in STEPS})


async def peak_rss(
    hub: AsyncCardLookupClient, driver: HubQueryDriver, hub_pid: int, people: Sequence[Person]
) -> tuple[int, int, float]:
    """(peak RSS bytes during the journeys, RSS before them, seconds): every
    person's full journey at once."""

    async def journey(person: Person) -> None:
        await enrol_one(hub, person)
        verified = await driver.verify(person)
        query_id = await driver.create(person, verified)
        await driver.watch(person, query_id)
        await hub.get_report(person.user_id, query_id, person.payment_password)

    at_rest = psutil.Process(hub_pid).memory_info().rss
    started = time.monotonic()
    with RssSampler(hub_pid) as sampler:
        async with asyncio.TaskGroup() as group:
            for person in people:
                group.create_task(journey(person))
    return sampler.peak_bytes, at_rest, time.monotonic() - started


def costs_table(costs: JourneyCosts, banks: int) -> str:
    head = "".join(f"{s:>18}" for s in STEPS)
    row = "".join(f"{costs.cpu_ms[s]:>18.1f}" for s in STEPS)
    return "\n".join(
        [f"== hub CPU ms per call, by journey step ({costs.journeys} journeys one at a time, {banks} banks)", head, row]
    )
