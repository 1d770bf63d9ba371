"""One long-lived mTLS channel per bank.

The hub presents its client certificate, trusts the configured CA, and
checks that the bank's server certificate names the bank code the registry
says lives at that address (`grpc.ssl_target_name_override` = the bank's
TLS name): a certificate issued to another bank fails the handshake, so one
bank cannot answer for another. Channels are created lazily inside the
running event loop and reused by every query.

Rotation (issue 11 item 3): `reload` swaps the client certificate, the
trusted CA and the bank addresses. The next call to a bank re-dials with the
new credentials (a new channel); calls already on the old channel finish on
it, and the old channel is closed once they had `grace` seconds to do so.

Session streams (issue 16 item 4): `attempt` is the one place an attempt
picks its transport. For a bank whose registry entry says `session = "auto"`
or `"on"`, the request goes as one exchange of the bank's session stream
(`hub.fanout.session.BankSession`, one per bank per process, on the bank's
channel, made anew with the channel); otherwise, or while the session says
UNSUPPORTED, it is a per-call ListCards (`hub.fanout.caller.attempt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.bank.v1 import card_session_pb2_grpc as session_grpc
from cardlookup.tls import channel_credentials
from hub.core.config import BankEndpoint, TlsFiles
from hub.fanout import caller
from hub.fanout.policy import BankCallPolicy
from hub.fanout.session import BankSession, Unsupported

MAX_RECEIVE_BYTES = 64 * 1024
"""The transport refuses bigger messages (RESOURCE_EXHAUSTED, "larger than
max"); the validator's own limit per message is far lower still."""


HEALTH_SERVICE = "cardlookup.bank.v1.CardDirectoryService"
"""The grpc.health.v1 service name a bank with several addresses reports per
endpoint (docs/bank-integration.md, "Health and reflection")."""


def bank_target(endpoint: BankEndpoint) -> str:
    """What the channel dials: the bank's one address, or every endpoint of
    a bank with several as one static list (`ipv4:`/`ipv6:` targets take IP
    literals, so host names are resolved here, once per dial; a re-dial
    after `reload` resolves them again)."""
    addresses = endpoint.all_addresses()
    if len(addresses) == 1:
        return addresses[0]
    v4: list[tuple[str, str]] = []
    v6: list[tuple[str, str]] = []
    for address in addresses:
        host, _, port = address.rpartition(":")
        for family, _, _, _, sockaddr in socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM):
            into = v6 if family == socket.AF_INET6 else v4
            if (str(sockaddr[0]), port) not in into:
                into.append((str(sockaddr[0]), port))
    if not v6:
        return "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in v4)
    # One target holds one family: IPv4 endpoints join as IPv4-mapped IPv6.
    return "ipv6:" + ",".join([f"[{ip}]:{port}" for ip, port in v6] + [f"[::ffff:{ip}]:{port}" for ip, port in v4])


def balancing_options(endpoint: BankEndpoint) -> list[tuple[str, int | str]]:
    """A bank with several addresses: the per-bank load-balancing policy,
    and for round_robin client-side health checking (an endpoint whose
    health is not SERVING, e.g. draining, gets no calls)."""
    if len(endpoint.all_addresses()) == 1:
        return []
    config: dict[str, Any] = {"loadBalancingConfig": [{endpoint.balancing: {}}]}
    if endpoint.balancing == "round_robin":
        config["healthCheckConfig"] = {"serviceName": HEALTH_SERVICE}
    return [("grpc.service_config", json.dumps(config))]


def channel_options(endpoint: BankEndpoint, policy: BankCallPolicy) -> list[tuple[str, int | str]]:
    reconnect_ms = max(1, int(policy.initial_backoff * 1000))
    return [
        *balancing_options(endpoint),
        ("grpc.ssl_target_name_override", endpoint.tls_name()),
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.max_send_message_length", MAX_RECEIVE_BYTES),
        # The hub retries itself, with its own backoff, breaker and 24 h window.
        ("grpc.enable_retries", 0),
        # Reconnect promptly once a bank that was down comes back.
        ("grpc.initial_reconnect_backoff_ms", reconnect_ms),
        # Not a backoff: grpc's minimum connect timeout (TCP and TLS handshake).
        ("grpc.min_reconnect_backoff_ms", max(1, int(policy.connect_timeout * 1000))),
        ("grpc.max_reconnect_backoff_ms", max(reconnect_ms, int(policy.max_backoff * 1000))),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]


class BankChannels:
    """Owns the channels to banks; close() on shutdown."""

    def __init__(self, tls: TlsFiles, policy: BankCallPolicy, now: Callable[[], float] = time.monotonic) -> None:
        """`now`: monotonic seconds for the sessions' timers (reprobe, cool-off)."""
        self._tls = tls
        self._policy = policy
        self._now = now
        self._credentials: grpc.ChannelCredentials | None = None
        self._channels: dict[str, tuple[BankEndpoint, grpc.aio.Channel, bank_grpc.CardDirectoryServiceStub]] = {}
        self._sessions: dict[str, tuple[grpc.aio.Channel, BankSession]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._seen: bytes | None = None
        """The bytes of the files the credentials were built from."""
        self.dials = 0
        """Channels created so far (tests and the runbook check a re-dial)."""

    def stub(self, endpoint: BankEndpoint) -> bank_grpc.CardDirectoryServiceStub:
        entry = self._channels.get(endpoint.code)
        if entry is not None and _dialled_as(entry[0]) != _dialled_as(endpoint):
            self._retire(entry[1])  # re-addressed: dial the new address
            entry = None
        if entry is None:
            if self._credentials is None:
                self._seen = _fingerprint(self._tls)
                self._credentials = channel_credentials(Path(self._tls.ca), Path(self._tls.cert), Path(self._tls.key))
            channel = grpc.aio.secure_channel(
                bank_target(endpoint), self._credentials, options=channel_options(endpoint, self._policy)
            )
            self.dials += 1
            entry = (endpoint, channel, bank_grpc.CardDirectoryServiceStub(channel))
            self._channels[endpoint.code] = entry
        return entry[2]

    def session(self, endpoint: BankEndpoint) -> BankSession:
        """The session of the bank's current channel (made with it)."""
        self.stub(endpoint)
        channel = self._channels[endpoint.code][1]
        entry = self._sessions.get(endpoint.code)
        if entry is None or entry[0] is not channel:
            session = BankSession(
                session_grpc.CardSessionServiceStub(channel),
                endpoint.code,
                endpoint.max_concurrent,
                fallback=endpoint.session != "on",
                reprobe=self._policy.session_reprobe,
                cooloff=self._policy.session_cooloff,
                now=self._now,
            )
            # An old session's stream ends with its channel's grace close.
            entry = (channel, session)
            self._sessions[endpoint.code] = entry
        entry[1].resize(endpoint.max_concurrent)  # a reload may have changed it
        return entry[1]

    def attempt(
        self, endpoint: BankEndpoint, request: bank_pb.ListCardsRequest, deadline_s: float
    ) -> Awaitable[caller.AttemptResult]:
        """One ListCards attempt at the bank, over its session stream or per
        call (see the module docstring); never raises for what the bank does.
        Per call, the awaitable is the call's own coroutine (no extra frame
        for every message of the stream to pass through)."""
        if endpoint.session == "off":
            return caller.attempt(self.stub(endpoint), request, endpoint.code, deadline_s)
        return self._session_attempt(endpoint, request, deadline_s)

    async def _session_attempt(
        self, endpoint: BankEndpoint, request: bank_pb.ListCardsRequest, deadline_s: float
    ) -> caller.AttemptResult:
        started = asyncio.get_running_loop().time()
        result = await self.session(endpoint).exchange(request, deadline_s)
        if not isinstance(result, Unsupported):
            return result
        deadline_s -= asyncio.get_running_loop().time() - started
        if deadline_s <= 0:
            return caller.Transient(grpc.StatusCode.DEADLINE_EXCEEDED.name)
        return await caller.attempt(self.stub(endpoint), request, endpoint.code, deadline_s)

    def reload(self, tls: TlsFiles) -> bool:
        """Uses `tls` for every channel dialled from now on, and retires the
        open channels if the files changed (reads them now: a bad file raises
        here, not at the next call). Returns whether anything changed."""
        seen = _fingerprint(tls)
        credentials = channel_credentials(Path(tls.ca), Path(tls.cert), Path(tls.key))
        if tls == self._tls and seen == self._seen:
            return False
        self._tls, self._credentials, self._seen = tls, credentials, seen
        channels, self._channels = self._channels, {}
        for _, channel, _ in channels.values():
            self._retire(channel)
        return True

    def _retire(self, channel: grpc.aio.Channel) -> None:
        task = asyncio.get_running_loop().create_task(channel.close(self._policy.channel_grace))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for _, session in sessions.values():
            await session.close()
        channels, self._channels = self._channels, {}
        for _, channel, _ in channels.values():
            await channel.close(None)
        retiring = list(self._retiring)
        for task in retiring:
            task.cancel()
        for task in retiring:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _dialled_as(endpoint: BankEndpoint) -> tuple[object, ...]:
    return endpoint.all_addresses(), endpoint.balancing, endpoint.tls_name()


def _fingerprint(tls: TlsFiles) -> bytes:
    return b"\0".join(Path(p).read_bytes() for p in (tls.ca, tls.cert, tls.key))
