"""Hub replicas as separate processes on one PostgreSQL database (issue 8):
what the replica test, the replica demo and the WatchQuery benchmark run.

    replicas = ReplicaSet(pki, bank_addresses, database_url, work, count=3, timings=REPLICA_TIMINGS)
    replicas.start_all()            # `cardlookup-hub --config` per replica
    replicas.kill("B")              # SIGKILL, no goodbye: its bank lanes run out
    replicas.restart("B")           # same port, a new replica id
    replicas.stop_all()

Each replica has its own listen port, configuration file and log file
(JSON lines), and all of them share one SMS outbox file (the development
gateway): a verification code sent by any replica is read in one place, and
each ready SMS shows up once whichever replica sends it. Every process start
gets a new replica id (`host:pid:random`, hub.engine.default_replica_id), so
the pid tells which process owns a bank's lane (`lanes.owner`, issue 16),
and so works on that bank's pending tasks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from cardlookup.pki import PkiPaths
from client.options import ClientOptions
from devstack import localstack
from hub.core.config import HubConfig, Timings

REPLICA_TIMINGS = Timings(
    lease_duration=dt.timedelta(seconds=2),
    retry_initial=dt.timedelta(milliseconds=50),
    retry_max=dt.timedelta(milliseconds=300),
    attempt_timeout=dt.timedelta(seconds=2),  # at most lease_duration (docs/configuration.md)
    breaker_reset=dt.timedelta(milliseconds=500),
    sms_resend_interval=dt.timedelta(seconds=1),
    notice_claim=dt.timedelta(seconds=15),
)
"""A short lease (a dead replica's banks are taken over ~2 s after its last
renewal), a call deadline no longer than it, and fast retries, so a demo or test sees a takeover quickly. The
1 s SMS resend interval lets a journey whose StartVerification died with a
replica ask again at once on another one. A ready SMS claimed by a replica
that then died is sent by another one within 15 s."""


@dataclass
class Replica:
    name: str
    port: int
    """The bound port, 0 until the first process serves (its ports file);
    the replica keeps it across restarts (clients hold its address)."""
    config: Path
    data: Path
    process: localstack.Process | None = None
    pids: list[int] = field(default_factory=list)
    """Every process this replica has run as, oldest first."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, start: int | None = None) -> Path:
        """The log file of the replica's `start`-th process (0-based; the
        current one by default): one file per process, so each line's
        writer is known even after a SIGKILL cut a line short."""
        n = len(self.pids) - 1 if start is None else start
        return self.data / f"hub-{n}.log"


class ReplicaSet:
    def __init__(
        self,
        pki: PkiPaths,
        banks: dict[str, str],
        database_url: str,
        work: Path,
        count: int = 3,
        timings: Timings = REPLICA_TIMINGS,
        log_level: str = "INFO",
    ) -> None:
        if not 1 <= count <= 26:
            raise ValueError("1 to 26 replicas")
        self.pki = pki
        self.work = work
        self.outbox = work / "sms-outbox.jsonl"
        """The one SMS outbox every replica appends to."""
        self._log_level = log_level
        self.replicas: dict[str, Replica] = {}
        for name in string.ascii_uppercase[:count]:
            data = work / f"replica-{name}"
            data.mkdir(parents=True, exist_ok=True)
            config = HubConfig.dev(
                pki,
                banks,
                data,
                database=database_url,
                listen="127.0.0.1:0",  # the first start binds a free port; wait_serving keeps it
                sms_outbox=self.outbox,
                timings=timings,
            )
            path = data / "hub.toml"
            path.write_text(config.to_toml(), encoding="utf-8")
            self.replicas[name] = Replica(name, 0, path, data)

    @property
    def names(self) -> list[str]:
        return list(self.replicas)

    def client_options(self, name: str, **overrides: Any) -> ClientOptions:
        """The app backend's client options for one replica."""
        return ClientOptions.from_pki(self.pki.root, self.replicas[name].address, **overrides)

    # -- processes -------------------------------------------------------------

    def start(self, name: str) -> None:
        """Starts one replica as a new process, logging to a new file."""
        replica = self.replicas[name]
        if replica.running:
            raise RuntimeError(f"replica {name} is already running")
        log = replica.data / f"hub-{len(replica.pids)}.log"
        with log.open("wb") as out:
            replica.process = subprocess.Popen(
                [
                    *localstack.command("cardlookup-hub"),
                    *("--config", str(replica.config), "--log-level", self._log_level),
                    *("--port-file", str(localstack.port_file(log))),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        replica.pids.append(replica.process.pid)

    def wait_serving(self, name: str, timeout_s: float = localstack.START_TIMEOUT_S) -> None:
        """Waits for the replica's current process to serve (it writes its
        ports file); the first one's bound port becomes the replica's."""
        replica = self.replicas[name]
        assert replica.process is not None
        log = replica.log()
        if replica.port == 0:
            replica.port = localstack.pin_bound_port(replica.config, log, replica.process, timeout_s)
        else:
            localstack.wait_for_hub(log, replica.process, timeout_s)

    def start_all(self) -> None:
        for name in self.replicas:
            self.start(name)
        for name in self.replicas:
            self.wait_serving(name)

    def kill(self, name: str) -> int:
        """SIGKILL: the replica gets no chance to release its bank lanes.
        Returns the killed process's pid."""
        replica = self.replicas[name]
        assert replica.process is not None
        pid = replica.process.pid
        os.kill(pid, signal.SIGKILL)
        replica.process.wait()
        return pid

    def restart(self, name: str) -> None:
        self.start(name)
        self.wait_serving(name)

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            localstack.stop(replica.process)

    # -- what happened -----------------------------------------------------------

    def events(self, name: str) -> list[dict[str, Any]]:
        """The replica's JSON log lines so far, every process in turn, each
        with the `pid` of the process that wrote it."""
        replica = self.replicas[name]
        out = []
        for n, pid in enumerate(replica.pids):
            for event in read_events(replica.log(n)):
                event["pid"] = pid
                out.append(event)
        return out

    def owner_of(self, lease_owner: str) -> str | None:
        """The replica name whose process holds `lease_owner` (host:pid:rand)."""
        parts = lease_owner.split(":")
        if len(parts) < 3 or not parts[-2].isdigit():
            return None
        pid = int(parts[-2])
        for replica in self.replicas.values():
            if pid in replica.pids:
                return replica.name
        return None


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of one hub process (a line a SIGKILL cut short,
    and any line that is not JSON, is skipped)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


@dataclass(frozen=True)
class Takeover:
    """What became of the bank tasks a killed replica held."""

    held: list[tuple[str, str]]
    """(query id, bank code) of the PENDING tasks leased to it when it died."""
    seconds: float
    """Kill -> the last of them leased by another replica (or final)."""
    by: dict[str, int]
    """Replica name -> how many of them it took over ("(finished)" for a task
    that was final before it was seen with a new holder)."""


async def leases_of(url: str, replicas: ReplicaSet, name: str) -> list[tuple[str, str]]:
    """The PENDING bank tasks in the lanes replica `name`'s processes own."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT t.query_id, t.bank_code, l.owner FROM bank_tasks t JOIN lanes l ON l.bank_code = t.bank_code"
            " WHERE t.state = 'PENDING'"
        )
    finally:
        await conn.close()
    return [(r[0], r[1]) for r in rows if r[2] and replicas.owner_of(r[2]) == name]


async def lanes_spread(url: str, replicas: ReplicaSet, timeout_s: float = 60.0) -> dict[str, int]:
    """Waits until every running replica owns a bank lane (they are spread
    over the replicas in their first lane rounds, issue 16); returns how
    many each owns."""
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(url)
    try:
        while True:
            rows = await conn.fetch("SELECT owner FROM lanes WHERE owner IS NOT NULL")
            owned: dict[str, int] = {}
            for (owner,) in rows:
                name = replicas.owner_of(owner)
                if name is not None:
                    owned[name] = owned.get(name, 0) + 1
            running = {r.name for r in replicas.replicas.values() if r.running}
            if running <= set(owned):
                return owned
            if time.monotonic() > deadline:
                raise TimeoutError(f"bank lanes not spread over {sorted(running)} within {timeout_s:.0f} s: {owned}")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def follow_takeover(
    url: str, replicas: ReplicaSet, held: list[tuple[str, str]], killed_at: float, timeout_s: float = 120.0
) -> Takeover:
    """Polls the database every 20 ms after a kill (`killed_at`, monotonic)
    until the lane of every task in `held` is owned by a running process
    (the killed replica restarted counts, under its new process) or the
    task is final."""
    waiting = set(held)
    by: dict[str, int] = {}
    conn = await asyncpg.connect(url)
    try:
        while waiting:
            if time.monotonic() - killed_at > timeout_s:
                raise TimeoutError(f"{len(waiting)} bank tasks were not taken over within {timeout_s:.0f} s")
            rows = await conn.fetch(
                "SELECT t.query_id, t.bank_code, t.state, l.owner FROM bank_tasks t"
                " JOIN lanes l ON l.bank_code = t.bank_code WHERE t.query_id = ANY($1::text[])",
                list({q for q, _ in waiting}),
            )
            live = {r.process.pid for r in replicas.replicas.values() if r.process is not None and r.running}
            for query_id, bank_code, state, owner in rows:
                key = (query_id, bank_code)
                if key not in waiting:
                    continue
                if state != "PENDING":
                    by["(finished)"] = by.get("(finished)", 0) + 1
                    waiting.discard(key)
                elif owner and _pid_of(owner) in live:
                    taker = replicas.owner_of(owner) or "?"
                    by[taker] = by.get(taker, 0) + 1
                    waiting.discard(key)
            if waiting:
                await asyncio.sleep(0.02)
    finally:
        await conn.close()
    return Takeover(held, time.monotonic() - killed_at, by)


def _pid_of(lease_owner: str) -> int | None:
    parts = lease_owner.split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None
