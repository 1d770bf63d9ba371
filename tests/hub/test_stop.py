"""Issue 19 item 1: a SIGTERMed hub stops within its `--grace`, measured
from its own log lines (bench.stop runs the processes: the bank fleet with
every bank stalled before its first card, the hub, a client).

No wall-clock bound here: the stuck streams' deadline is 10 minutes away, so
a hub that exits having cut them (interrupted) did not wait for them; an
idle hub given an hour of grace exits having used none of it. The
durations are measured by `python -m bench.stop` (docs/operations.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import stop as bench_stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bench_stop.Stack]:
    stack = bench_stop.set_up(tmp_path_factory.mktemp("stop"), runs=2)
    yield stack
    bench_stop.localstack.stop(stack.banks)


def lease_owners(database: Path) -> list[object]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT lease_owner FROM bank_tasks WHERE state = 'PENDING'")]


async def test_stuck_bank_streams_and_an_open_watch_are_cut_at_the_grace(stack: bench_stop.Stack) -> None:
    stopped = await bench_stop.stop_once(stack, "stuck+watch", grace=1.0, run=0)
    assert stopped.exit_code == 0
    assert stopped.event("hub_stopping")["grace_s"] == 1.0  # the hub logs its whole stop budget
    # Every bank's stream was still open when the grace ran out (their
    # deadline is 600 s away): the engine cut them rather than wait.
    assert stopped.event("engine_stopped")["interrupted_banks"] == bench_stop.BANKS
    # The open WatchQuery ended as a retryable error (the client re-opens it elsewhere).
    assert stopped.watch_ended == "HubUnavailable"
    events = [r["event"] for r in stopped.records]
    assert events.index("hub_stopping") < events.index("engine_stopped") < events.index("hub_stopped")
    hub_stopped = stopped.event("hub_stopped")
    assert hub_stopped["grace_s"] == 1.0 and isinstance(hub_stopped["stop_s"], float)
    # The interrupted banks stay PENDING with no lease: another replica (or the next start) resumes them at once.
    database = stack.work / "stuck-watch-1-0" / "hub.db"
    owners = lease_owners(database)
    assert len(owners) == bench_stop.BANKS and all(owner is None for owner in owners)


async def test_an_idle_hub_does_not_wait_for_its_grace(stack: bench_stop.Stack) -> None:
    # A connected client keeps a health Watch stream open; the hub ends it
    # after saying NOT_SERVING instead of waiting the hour out.
    stopped = await bench_stop.stop_once(stack, "idle", grace=3600.0, run=1)
    assert stopped.exit_code == 0
    hub_stopped = stopped.event("hub_stopped")
    assert hub_stopped["grace_s"] == 3600.0 and hub_stopped["stop_s"] < 3600.0
    assert stopped.event("engine_stopped")["interrupted_banks"] == 0
