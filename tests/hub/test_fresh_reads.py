"""hub.reports.sealing.FreshReads: the sealing key is read fresh for every
answer (a key replaced while a query runs is used from the next answer on),
but the answers of a burst share reads. Every caller must get a read that
started after it asked; callers that ask together share one."""

from __future__ import annotations

import asyncio

import pytest

from hub.reports.sealing import FreshReads


class Source:
    """A value that changes; each read takes a step of the event loop."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.started = asyncio.Event()

    async def read(self, key: str) -> tuple[str, int]:
        self.reads += 1
        self.started.set()
        seen = self.value  # what the store holds when the statement starts
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("store down")
        return key, seen


async def test_callers_that_ask_together_share_one_read() -> None:
    source = Source()
    reads = FreshReads(source.read)
    results = await asyncio.gather(*(reads.get("u1") for _ in range(50)))
    assert results == [("u1", 0)] * 50
    assert source.reads == 1


async def test_a_caller_arriving_during_a_read_gets_a_later_read_that_sees_the_new_value() -> None:
    source = Source()
    source.gate = asyncio.Event()
    reads = FreshReads(source.read)
    first = asyncio.create_task(reads.get("u1"))
    await source.started.wait()  # the first read has started, and reads the old value
    source.value = 1  # the key is replaced (committed) ...
    late = [asyncio.create_task(reads.get("u1")) for _ in range(10)]  # ... then these answers ask
    await asyncio.sleep(0)
    source.gate.set()
    assert await first == ("u1", 0)
    assert [await t for t in late] == [("u1", 1)] * 10
    assert source.reads == 2  # the ten shared the second read


async def test_keys_are_read_apart() -> None:
    source = Source()
    reads = FreshReads(source.read)
    assert await asyncio.gather(reads.get("a"), reads.get("b"), reads.get("a")) == [("a", 0), ("b", 0), ("a", 0)]
    assert source.reads == 2


async def test_a_failed_read_fails_its_callers_and_the_next_call_reads_again() -> None:
    source = Source()
    source.fail = True
    reads = FreshReads(source.read)
    results = await asyncio.gather(reads.get("u1"), reads.get("u1"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    source.fail = False
    source.value = 7
    assert await reads.get("u1") == ("u1", 7)


async def test_a_cancelled_caller_does_not_cancel_the_others_read() -> None:
    source = Source()
    source.gate = asyncio.Event()
    reads = FreshReads(source.read)
    leaving = asyncio.create_task(reads.get("u1"))
    staying = asyncio.create_task(reads.get("u1"))
    await source.started.wait()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    source.gate.set()
    assert await staying == ("u1", 0)
