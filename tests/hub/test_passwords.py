"""Bounded password hashing (issue 10 item 2): a fixed number of argon2id
hashes at a time, waits bounded by the call's deadline, parameters no weaker
than OWASP's, and version 1's hashes still verifying (then upgraded). No
timing is asserted: the deadline cases use deadlines that are already past
or that no hash can meet."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import argon2
import pytest

from cardlookup.clock import ManualClock
from hub.core import calls
from hub.identity.errors import RuleViolation
from hub.identity.passwords import DEFAULT_PARAMETERS, PasswordGate, PasswordHasher
from hub.store.db import open_database
from hub.store.users import UserRow, UserStore

V1_PARAMETERS = argon2.profiles.RFC_9106_LOW_MEMORY


def test_parameters_are_no_weaker_than_owasp() -> None:
    p = DEFAULT_PARAMETERS
    assert p.type == argon2.Type.ID
    assert p.parallelism >= 1
    # OWASP: m=19 MiB with t=2 (or more memory with fewer passes: 46 MiB, t=1).
    assert (p.memory_cost >= 19 * 1024 and p.time_cost >= 2) or (p.memory_cost >= 46 * 1024 and p.time_cost >= 1)
    assert argon2.extract_parameters(PasswordHasher()._hasher.hash("123456")).memory_cost == p.memory_cost


async def test_hashes_run_at_most_concurrency_at_a_time() -> None:
    hasher = PasswordHasher(concurrency=2)
    hashes = await asyncio.gather(*(hasher.hash(f"{i:06d}") for i in range(8)))
    assert hasher.peak_in_flight == 2
    assert all(await asyncio.gather(*(hasher.matches(h, f"{i:06d}") for i, h in enumerate(hashes))))
    assert not await hasher.matches(hashes[0], "000001")


async def test_a_call_whose_deadline_cannot_be_met_is_refused_busy() -> None:
    hasher = PasswordHasher(concurrency=1)
    loop = asyncio.get_running_loop()

    async def with_deadline(when: float) -> str:
        calls.set_deadline(when)  # as the API interceptor does, in this task's context
        return await hasher.hash("123456")

    with pytest.raises(RuleViolation) as refused:
        await asyncio.create_task(with_deadline(loop.time() - 1.0))
    assert refused.value.reason == "HUB_UNAVAILABLE"
    # Queued behind a running hash with a deadline no hash can meet: refused
    # while waiting, not after hashing for a caller that has gone.
    hasher.mean_s = 0.0  # let it past the up-front estimate, into the queue
    first = asyncio.create_task(hasher.hash("111111"))
    await asyncio.sleep(0)
    with pytest.raises(RuleViolation):
        await asyncio.create_task(with_deadline(loop.time() + 0.001))
    await first
    assert hasher.peak_in_flight == 1
    # Without a deadline (outside an API call) nothing is refused.
    assert await hasher.hash("222222")


async def test_version_1_hashes_verify_and_are_upgraded_on_the_right_password(tmp_path: Path) -> None:
    old = argon2.PasswordHasher.from_parameters(V1_PARAMETERS).hash("654321")
    hasher = PasswordHasher()
    assert hasher.needs_rehash(old) and await hasher.matches(old, "654321")

    db = await open_database(tmp_path / "hub.db")
    try:
        store = UserStore(db)
        await store.migrate()
        now = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
        row = UserRow("u1", "h", b"k", b"c", "138****0000", "110000", None, old, 0, None, now, now)
        await store.upsert(row, keep_password=False)
        gate = PasswordGate(store, hasher, ManualClock(now), 5, dt.timedelta(hours=1))

        result, refusal = await gate.check("u1", old, "000000")
        assert (result, refusal is not None) == ("WRONG_PASSWORD", True)
        stored = await store.get("u1")
        assert stored is not None and stored.password_hash == old  # a wrong password upgrades nothing

        result, refusal = await gate.check("u1", old, "654321")
        assert (result, refusal) == ("VIEWED", None)
        stored = await store.get("u1")
        assert stored is not None and stored.password_hash != old
        assert not hasher.needs_rehash(stored.password_hash)
        assert await hasher.matches(stored.password_hash, "654321")
    finally:
        await db.close()
