"""The fan-out benchmark's phases (bench.fanout runs them): for one bank
count, the hub's measured phase (a `cardlookup-hub` process with a generated
config, full journeys through client.aio) and the baseline's (bench/baseline.py
against the same banks for the same people), and what each size yields."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import journey, processes
from bench.hub_driver import HubQueryDriver, enrol
from bench.journey import RssSampler
from bench.people import pick_people, population_for
from bench.phase import CpuMeter, run_phase
from bench.stats import PhaseResult, summarize
from cardlookup.pki import PkiPaths
from cardlookup.population import Person
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from devstack import localstack
from hub.core.notify import OutboxTail

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    banks: int
    queries: int
    warmup: int
    concurrency: int
    cap_s: float
    hub_log_level: str
    changes_only: bool = True
    latency_ms: tuple[float, float] | None = None
    journey_costs: int = 0
    rss_journeys: int = 0
    database: str | None = None
    sessions: str = "off"
    """off: the hub calls ListCards per query; on: over bank session streams;
    both: the hub per call, then over sessions, back to back (issue 16)."""
    session_database: str | None = None
    """With sessions both on PostgreSQL: the second hub's own database."""


@dataclass(frozen=True)
class HubExtras:
    watch_bytes_per_query: float
    peak_rss_mb: float
    journey: dict[str, float] = field(default_factory=dict)
    """Hub CPU ms per call of each journey step (first size only)."""
    journeys_peak_rss_mb: float = 0.0
    journeys_at_rest_rss_mb: float = 0.0


@dataclass(frozen=True)
class SizeResult:
    hub: PhaseResult
    baseline: PhaseResult
    errors: dict[str, str]
    extras: HubExtras | None = None
    hub_session: PhaseResult | None = None
    """With --bank-sessions both: the hub over bank session streams."""


async def hub_phase(
    plan: Plan,
    pki: PkiPaths,
    banks: dict[str, str],
    bank_pid: int,
    work: Path,
    people: list[Person],
    extra_people: list[Person],
    session: str = "off",
) -> tuple[PhaseResult, str, HubExtras]:
    config = work / "hub.toml"
    processes.write_hub_config(config, pki, 0, banks, work, plan.database, session)  # port 0: the hub reports it
    hub = processes.start_hub(config, plan.hub_log_level, work)
    try:
        port = await asyncio.to_thread(localstack.wait_for_hub, work / "hub.log", hub)
        # timeout_s: set-up calls too (each enrolment runs two argon2id derivations at the hub).
        options = ClientOptions.from_pki(pki.root, f"127.0.0.1:{port}", timeout_s=60.0, create_timeout_s=120.0)
        async with AsyncCardLookupClient(options) as client:
            await client.wait_ready(localstack.START_TIMEOUT_S)
            with RssSampler(hub.pid) as rss:
                await enrol(client, people)
                listed = await client.list_banks(people[0].user_id)
                driver = HubQueryDriver(
                    client,
                    OutboxTail(work / "sms-outbox.jsonl"),
                    DevFaceProvider.from_file(pki.face_provider_key),
                    list(banks),
                    listed.consent_text_version,
                    changes_only=plan.changes_only,
                )
                meters = [CpuMeter(hub.pid), CpuMeter(bank_pid)]
                outcome = await run_phase(
                    people,
                    warmup=plan.warmup,
                    concurrency=plan.concurrency,
                    cap_s=plan.cap_s,
                    one=driver.query,
                    meters=meters,
                )
            streamed = driver.watch_bytes[plan.warmup :] or driver.watch_bytes
            extras = HubExtras(sum(streamed) / max(1, len(streamed)), rss.peak_bytes / 2**20)
            costs_people = extra_people[: plan.journey_costs]
            if costs_people:
                costs = await journey.step_costs(client, driver, hub.pid, costs_people)
                print(journey.costs_table(costs, plan.banks), flush=True)
                extras = dataclasses.replace(extras, journey=costs.cpu_ms)
            rss_people = extra_people[plan.journey_costs : plan.journey_costs + plan.rss_journeys]
            if rss_people:
                peak, at_rest, took = await journey.peak_rss(client, driver, hub.pid, rss_people)
                print(
                    f"== hub peak RSS under {len(rss_people)} concurrent full journeys (EnrollUser .. GetReport): "
                    f"{peak / 2**20:.0f} MB (at rest before them {at_rest / 2**20:.0f} MB; {took:.1f} s)",
                    flush=True,
                )
                extras = dataclasses.replace(
                    extras, journeys_peak_rss_mb=peak / 2**20, journeys_at_rest_rss_mb=at_rest / 2**20
                )
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited during the run:\n{localstack.log_tail(work / 'hub.log')}")
    finally:
        localstack.stop(hub)
    result = summarize(
        "hub" if session == "off" else "hub+session",
        plan.banks,
        plan.concurrency,
        outcome.latencies_s,
        outcome.failed,
        outcome.wall_s,
        meters[0].seconds,
        meters[1].seconds,
    )
    return result, outcome.first_error, extras


async def baseline_phase(
    plan: Plan, pki: PkiPaths, addresses: Path, bank_pid: int, population_size: int, on: dt.date, work: Path
) -> tuple[PhaseResult, str]:
    out = work / "baseline.json"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.baseline",
        "--pki",
        str(pki.root),
        "--addresses",
        str(addresses),
        "--bank-pid",
        str(bank_pid),
        "--population-size",
        str(population_size),
        "--on",
        on.isoformat(),
        "--queries",
        str(plan.queries),
        "--warmup",
        str(plan.warmup),
        "--concurrency",
        str(plan.concurrency),
        "--cap",
        str(plan.cap_s),
        "--json-out",
        str(out),
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"the baseline failed ({child.returncode}):\n{stderr.decode(errors='replace')[-2000:]}")
    raw = json.loads(out.read_text())
    return PhaseResult.from_dict(raw["result"]), raw["first_error"]


async def run_size(plan: Plan, pki: PkiPaths, work: Path) -> SizeResult:
    on = dt.datetime.now(dt.UTC).date()
    measured = plan.warmup + plan.queries
    total = measured + plan.journey_costs + plan.rss_journeys
    population = population_for(total, plan.banks, on)
    everyone = pick_people(population, total, on)
    people, extra_people = everyone[:measured], everyone[measured:]
    bank_proc, addresses = processes.start_banks(pki, plan.banks, population.size, work, plan.latency_ms)
    try:
        await processes.wait_for_file(addresses, bank_proc, "cardlookup-banks", work / "banks.log")
        banks = localstack.read_addresses(addresses)
        first = "on" if plan.sessions == "on" else "off"
        hub, hub_error, extras = await hub_phase(plan, pki, banks, bank_proc.pid, work, people, extra_people, first)
        session: PhaseResult | None = None
        session_error = ""
        if plan.sessions == "both":
            # The same people again, on a fresh hub (its own store), over sessions.
            again = work / "session"
            again.mkdir()
            bare = dataclasses.replace(plan, journey_costs=0, rss_journeys=0, database=plan.session_database)
            session, session_error, _ = await hub_phase(bare, pki, banks, bank_proc.pid, again, people, [], "on")
        base, base_error = await baseline_phase(plan, pki, addresses, bank_proc.pid, population.size, on, work)
        if bank_proc.poll() is not None:
            raise RuntimeError(f"the banks exited during the run:\n{localstack.log_tail(work / 'banks.log')}")
    finally:
        localstack.stop(bank_proc)
    named = (("hub", hub_error), ("hub+session", session_error), ("baseline", base_error))
    errors = {name: e for name, e in named if e}
    return SizeResult(hub, base, errors, extras, session)
