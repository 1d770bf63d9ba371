"""Per-bank lanes: a channel, a concurrency cap and a circuit breaker.

A lane isolates one bank: its semaphore bounds the calls in flight to it
from this process (`BankEndpoint.max_concurrent`), and its breaker stops
sending while it is sick, so a slow or failing bank cannot take capacity
from the others (each bank's work runs in its own tasks).

Across replicas (issue 16) each bank has one owner, the replica that holds
its bank lane (hub.store.lanes): that replica makes every call to the
bank, for every query, so the semaphore and the breaker here hold for the
whole service without sharing anything through the store.

A lane outlives a reload (issue 11 item 3): `Fanout.reconfigure` points the
lanes of re-addressed banks at their new endpoint and the channels at the
new client certificate; each attempt asks the channels for the stub, so the
next attempt re-dials. A removed bank's lane stays for the bank tasks
already running (queries in flight are unaffected); new queries cannot
choose it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from hub.core.config import BankEndpoint, HubConfig
from hub.fanout.breaker import CircuitBreaker
from hub.fanout.channels import BankChannels
from hub.fanout.policy import BankCallPolicy
from hub.telemetry.metrics import HubMetrics


@dataclass
class BankLane:
    endpoint: BankEndpoint
    channels: BankChannels
    limit: asyncio.Semaphore
    breaker: CircuitBreaker

    @property
    def stub(self) -> bank_grpc.CardDirectoryServiceStub:
        """The stub of the bank's current channel (re-dialled after a reload)."""
        return self.channels.stub(self.endpoint)


class Fanout:
    """Everything the engine needs to call banks: lanes, the bank-call
    policy (deadline, backoff, breaker: hub.fanout.policy), jitter."""

    def __init__(
        self,
        config: HubConfig,
        rng: random.Random | None = None,
        metrics: HubMetrics | None = None,
        policy: BankCallPolicy | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """`policy`: the bank-call policy (default: built from the timings).
        `now`: monotonic seconds for the breakers and the sessions' timers
        (operational rules, not product rules: tests pass their own)."""
        self._config = config
        self.metrics = metrics if metrics is not None else HubMetrics()
        self.metrics.watch_fanout(self)
        self.policy = policy if policy is not None else BankCallPolicy.from_timings(config.timings)
        self._channels = BankChannels(config.bank_tls, self.policy, now)
        self._now = now
        self._lanes: dict[str, BankLane] = {}
        self.backoff = self.policy.backoff
        self.rng = rng or random.Random()

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
            breaker = CircuitBreaker(self.policy.breaker_failures, self.policy.breaker_reset, self._now)
            lane = BankLane(
                endpoint=endpoint,
                channels=self._channels,
                limit=asyncio.Semaphore(endpoint.max_concurrent),
                breaker=breaker,
            )
            self._lanes[bank_code] = lane
        return lane

    def reconfigure(self, config: HubConfig) -> list[str]:
        """Applies a reloaded configuration: the bank registry (re-addressed
        lanes), and the client certificate (channels re-dial). Returns what
        changed, for the operator."""
        changes = []
        self._config = config
        for code, lane in list(self._lanes.items()):
            endpoint = config.bank(code)
            if endpoint is not None and endpoint != lane.endpoint:
                if endpoint.max_concurrent != lane.endpoint.max_concurrent:
                    # Issue 19 item 4: calls started from now on wait on the
                    # new limit; those in flight release the old one.
                    lane.limit = asyncio.Semaphore(endpoint.max_concurrent)
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
