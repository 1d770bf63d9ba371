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

A lane outlives a reload (issue 11 item 3): `Fanout.reconfigure` points the
lanes of re-addressed banks at their new endpoint and the channels at the
new client certificate; each attempt asks the channels for the stub, so the
next attempt re-dials. A removed bank's lane stays for the bank tasks
already running (queries in flight are unaffected); new queries cannot
choose it.
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
from hub.metrics import HubMetrics

SlotFactory = Callable[[BankEndpoint], AbstractAsyncContextManager[None]]
"""Returns a context that holds one shared call slot of the bank."""
BreakerListener = Callable[[str, CircuitBreaker], None]
"""Told (bank code, breaker) when a lane's breaker opens or closes."""


def _no_slot(_endpoint: BankEndpoint) -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


@dataclass
class BankLane:
    endpoint: BankEndpoint
    channels: BankChannels
    limit: asyncio.Semaphore
    breaker: CircuitBreaker
    slots: SlotFactory = field(default=_no_slot)

    def slot(self) -> AbstractAsyncContextManager[None]:
        return self.slots(self.endpoint)

    @property
    def stub(self) -> bank_grpc.CardDirectoryServiceStub:
        """The stub of the bank's current channel (re-dialled after a reload)."""
        return self.channels.stub(self.endpoint)


class Fanout:
    """Everything the engine needs to call banks: lanes, backoff, jitter."""

    def __init__(
        self,
        config: HubConfig,
        rng: random.Random | None = None,
        metrics: HubMetrics | None = None,
    ) -> None:
        self._config = config
        self.metrics = metrics if metrics is not None else HubMetrics()
        self.metrics.watch_fanout(self)
        self._channels = BankChannels(config.bank_tls, config.timings)
        self._lanes: dict[str, BankLane] = {}
        self._slots: SlotFactory = _no_slot
        self._on_breaker_change: BreakerListener | None = None
        self.backoff = Backoff.from_timings(config.timings)
        self.rng = rng or random.Random()
        self.attempt_timeout = config.timings.attempt_timeout.total_seconds()

    @property
    def channels(self) -> BankChannels:
        return self._channels

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
                channels=self._channels,
                limit=asyncio.Semaphore(endpoint.max_concurrent),
                breaker=breaker,
                slots=self._slots,
            )
            self._lanes[bank_code] = lane
        return lane

    def share(self, slots: SlotFactory, on_breaker_change: BreakerListener) -> None:
        """Holds the concurrency caps and breakers with other replicas (call
        before the first lane is made)."""
        self._slots = slots
        self._on_breaker_change = on_breaker_change

    def reconfigure(self, config: HubConfig) -> list[str]:
        """Applies a reloaded configuration: the bank registry (re-addressed
        lanes), and the client certificate (channels re-dial). Returns what
        changed, for the operator."""
        changes = []
        self._config = config
        for code, lane in list(self._lanes.items()):
            endpoint = config.bank(code)
            if endpoint is not None and endpoint != lane.endpoint:
                lane.endpoint = endpoint
                changes.append(f"banks: {code} re-addressed")
        if self._channels.reload(config.bank_tls):
            changes.append("bank_tls: client certificate and trusted CAs reloaded; bank channels re-dial")
        return changes

    def breaker_states(self) -> dict[str, str]:
        """Each lane's breaker state (metrics, the admin bank-health view)."""
        return {code: lane.breaker.state.value for code, lane in list(self._lanes.items())}

    async def close(self) -> None:
        self._lanes.clear()
        await self._channels.close()
