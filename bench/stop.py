"""How long a SIGTERMed hub takes to stop (issue 19 item 1), measured from
the hub's own log lines (`hub_stopping` → `hub_stopped`; the hub also logs
the `stop_s` it measured itself), for a given `--grace`:

- idle: no query in flight, one client connected (its channel keeps a
  health Watch stream open);
- stuck: a query whose banks all hang before their first card (the
  simulator's `stall_after_cards = 0`), the call deadline far away;
- stuck+watch: the same, plus an open WatchQuery on that query.

    python -m bench.stop --grace 1 --grace 3 --runs 3

The hub, the bank fleet and the client are separate processes, as in
production (devstack.localstack). tests/hub/test_stop.py runs one stuck+watch
stop and checks how it ended; durations are measured here only
(docs/operations.md lists them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import tempfile
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.people import pick_people, population_for
from cardlookup.banks import bank_fleet
from cardlookup.pki import PkiPaths, create_dev_pki
from client import errors
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from devstack import localstack
from hub.core.config import DEFAULT_CONSENT_TEXT_VERSION, HubConfig, Timings
from hub.core.notify import OutboxTail

BANKS = 4
SCENARIOS = ("idle", "stuck", "stuck+watch")
TIMINGS = Timings(
    # A stuck stream would end only at its deadline: far beyond any grace.
    attempt_timeout=dt.timedelta(seconds=600),
    lease_duration=dt.timedelta(seconds=600),
    notice_claim=dt.timedelta(seconds=600),
    sms_resend_interval=dt.timedelta(seconds=1),
)


@dataclass
class Stack:
    """PKI, population and a stalled bank fleet, shared by every run."""

    work: Path
    pki: PkiPaths
    people: list[Any]
    banks: localstack.Process
    addresses: dict[str, str]
    used: int = 0

    def person(self) -> Any:
        self.used += 1
        return self.people[self.used - 1]


@dataclass
class Stopped:
    scenario: str
    grace: float
    exit_code: int
    records: list[dict[str, Any]] = field(default_factory=list)
    watch_ended: str = ""
    """How the open WatchQuery ended (its error class), "" if none was open."""

    def event(self, name: str) -> dict[str, Any]:
        return next(r for r in self.records if r.get("event") == name)

    @property
    def logged_seconds(self) -> float:
        """hub_stopping → hub_stopped, from the lines' own timestamps."""
        start, end = (dt.datetime.fromisoformat(self.event(e)["ts"]) for e in ("hub_stopping", "hub_stopped"))
        return (end - start).total_seconds()


def set_up(work: Path, runs: int) -> Stack:
    codes = [b.code for b in bank_fleet(BANKS)]
    pki = create_dev_pki(work / "pki", codes)
    today = dt.datetime.now(dt.UTC).date()
    population = population_for(runs, BANKS, today)
    (work / "banks.toml").write_text("[defaults.faults]\nstall_after_cards = 0\n", encoding="utf-8")
    addresses = work / "banks.json"
    extra = ["--population-size", str(population.size), "--config", str(work / "banks.toml")]
    banks = localstack.start_banks(pki, BANKS, addresses, work / "banks.log", extra)
    localstack.wait_for_file(addresses, banks, "the bank fleet", work / "banks.log")
    return Stack(work, pki, pick_people(population, runs, today), banks, localstack.read_addresses(addresses))


def hub_records(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def wait_for(log: Path, event: str, hub: localstack.Process, **fields: Any) -> None:
    while not any(r.get("event") == event and all(r.get(k) == v for k, v in fields.items()) for r in hub_records(log)):
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited:\n{localstack.log_tail(log)}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_hub(
    stack: Stack, name: str, grace: float
) -> AsyncIterator[tuple[localstack.Process, Path, int, int]]:
    work = stack.work / name
    work.mkdir()
    config, log = work / "hub.toml", work / "hub.log"
    listen = {"listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0"}  # the hub reports the bound ports
    hub_config = HubConfig.dev(stack.pki, stack.addresses, work, timings=TIMINGS, **listen)
    config.write_text(hub_config.to_toml(), encoding="utf-8")
    hub = localstack.start_hub(config, log, ["--grace", str(grace)])
    try:
        await wait_for(log, "hub_serving", hub)
        port = await asyncio.to_thread(localstack.wait_for_hub, log, hub)
        yield hub, log, port, localstack.hub_ports(log)["metrics_port"]
    finally:
        localstack.stop(hub)


def bank_calls_in_flight(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
        text = response.read().decode()
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("cardlookup_hub_bank_in_flight{")
    )


async def every_stream_open(metrics_port: int, banks: int) -> None:
    """Until the hub has a call in flight to every bank (each hangs)."""
    while True:
        if await asyncio.to_thread(bank_calls_in_flight, metrics_port) >= banks:
            return
        await asyncio.sleep(0.05)


async def create_stuck_query(client: AsyncCardLookupClient, stack: Stack, work: Path) -> tuple[str, str]:
    """A query on every bank; returns (user id, query id)."""
    person = stack.person()
    await client.enroll_user(**person.enrolment())
    started = await client.start_verification(person.user_id)
    code = await OutboxTail(work / "sms-outbox.jsonl").code_for(person.phone, timeout_s=30)
    face = DevFaceProvider.from_file(stack.pki.face_provider_key)
    created = await client.create_query(
        user_id=person.user_id,
        request_id=uuid.uuid4().hex,
        verification_id=started.verification_id,
        sms_code=code,
        face_attestation=face.attest(person.user_id, started.verification_id, dt.datetime.now(dt.UTC)),
        consent_text_version=DEFAULT_CONSENT_TEXT_VERSION,
        bank_codes=sorted(stack.addresses),
    )
    return person.user_id, created.query_id


async def watch_until_it_ends(client: AsyncCardLookupClient, user_id: str, query_id: str, opened: asyncio.Event) -> str:
    try:
        async for _ in client.watch_query(user_id, query_id):
            opened.set()
    except errors.CardLookupError as error:
        return type(error).__name__
    return "ended"


async def stop_once(stack: Stack, scenario: str, grace: float, run: int) -> Stopped:
    name = f"{scenario.replace('+', '-')}-{grace:g}-{run}"
    async with running_hub(stack, name, grace) as (hub, log, port, metrics_port):
        options = ClientOptions.from_pki(stack.pki.root, f"127.0.0.1:{port}")
        async with AsyncCardLookupClient(options) as client:
            await client.wait_ready(60)
            watch: asyncio.Task[str] | None = None
            if scenario != "idle":
                user_id, query_id = await create_stuck_query(client, stack, log.parent)
                await every_stream_open(metrics_port, len(stack.addresses))
                if scenario == "stuck+watch":
                    opened = asyncio.Event()
                    watch = asyncio.create_task(watch_until_it_ends(client, user_id, query_id, opened))
                    await opened.wait()
            hub.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(hub.wait)
            watch_ended = await watch if watch is not None else ""
        return Stopped(scenario, grace, exit_code, hub_records(log), watch_ended)


async def measure(graces: list[float], runs: int, scenarios: list[str]) -> list[Stopped]:
    with tempfile.TemporaryDirectory(prefix="cardlookup-stop-") as tmp:
        stack = set_up(Path(tmp), runs * len(graces) * len(scenarios))
        try:
            return [
                await stop_once(stack, scenario, grace, run)
                for grace in graces
                for scenario in scenarios
                for run in range(runs)
            ]
        finally:
            localstack.stop(stack.banks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grace", type=float, action="append", help="the hub's --grace (repeatable; default 1 and 3)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    args = parser.parse_args()
    results = asyncio.run(measure(args.grace or [1.0, 3.0], args.runs, args.scenario or list(SCENARIOS)))
    print(f"{'scenario':<12} {'grace':>5} {'logged s':>9} {'hub stop_s':>10} {'interrupted':>11}  watch")
    for r in results:
        stopped = r.event("hub_stopped")
        interrupted = r.event("engine_stopped")["interrupted_banks"]
        print(
            f"{r.scenario:<12} {r.grace:>5g} {r.logged_seconds:>9.3f} {stopped['stop_s']:>10.3f}"
            f" {interrupted:>11}  {r.watch_ended or '-'}"
        )


if __name__ == "__main__":
    main()
