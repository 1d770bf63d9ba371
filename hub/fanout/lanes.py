"""Per-bank lanes: a channel, a concurrency cap and a circuit breaker.

A lane isolates one bank: its semaphore bounds the calls in flight to it
from this process (`BankEndpoint.max_concurrent`), and its breaker stops
sending while it is sick, so a slow or failing bank cannot take capacity
from the others (each bank's work runs in its own tasks).

Across replicas (issue 8) the engine plugs two things in, both backed by
the store: `slot`, a per-call lease of one of the bank's `max_concurrent`
slots shared by every replica (the cap holds for all of them together),
and `on_breaker_change`, which publishes this process's breaker openings
and closings so the other replicas' breakers follow (a bank one replica
found down is not hammered by the others). On one SQLite process both are
unnecessary and stay no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from hub.config import BankEndpoint, HubConfig
from hub.fanout.backoff import Backoff
from hub.fanout.breaker import CircuitBreaker
from hub.fanout.channels import BankChannels

SlotFactory = Callable[[BankEndpoint], AbstractAsyncContextManager[None]]
"""Returns a context that holds one shared call slot of the bank."""
BreakerListener = Callable[[str, CircuitBreaker], None]
"""Told (bank code, breaker) when a lane's breaker opens or closes."""


def _no_slot(_endpoint: BankEndpoint) -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


@dataclass
class BankLane:
    endpoint: BankEndpoint
    stub: bank_grpc.CardDirectoryServiceStub
    limit: asyncio.Semaphore
    breaker: CircuitBreaker
    slots: SlotFactory = field(default=_no_slot)

    def slot(self) -> AbstractAsyncContextManager[None]:
        return self.slots(self.endpoint)


class Fanout:
    """Everything the engine needs to call banks: lanes, backoff, jitter."""

    def __init__(
        self,
        config: HubConfig,
        rng: random.Random | None = None,
        slots: SlotFactory | None = None,
        on_breaker_change: BreakerListener | None = None,
    ) -> None:
        self._config = config
        self._channels = BankChannels(config.bank_tls, config.timings)
        self._lanes: dict[str, BankLane] = {}
        self._slots = slots or _no_slot
        self._on_breaker_change = on_breaker_change
        self.backoff = Backoff.from_timings(config.timings)
        self.rng = rng or random.Random()
        self.attempt_timeout = config.timings.attempt_timeout.total_seconds()

    def lane(self, bank_code: str) -> BankLane:
        """The lane of a configured bank (KeyError for an unknown code)."""
        lane = self._lanes.get(bank_code)
        if lane is None:
            endpoint = self._config.bank(bank_code)
            if endpoint is None:
                raise KeyError(bank_code)
            t = self._config.timings
            breaker = CircuitBreaker(t.breaker_failures, t.breaker_reset.total_seconds())
            if self._on_breaker_change is not None:
                notify = self._on_breaker_change
                breaker.on_change = lambda b, code=bank_code: notify(code, b)
            lane = BankLane(
                endpoint=endpoint,
                stub=self._channels.stub(endpoint),
                limit=asyncio.Semaphore(endpoint.max_concurrent),
                breaker=breaker,
                slots=self._slots,
            )
            self._lanes[bank_code] = lane
        return lane

    def known_lane(self, bank_code: str) -> BankLane | None:
        """The lane of a bank this process has called, else None."""
        return self._lanes.get(bank_code)

    async def close(self) -> None:
        self._lanes.clear()
        await self._channels.close()
