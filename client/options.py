"""Everything about how the app backend's client talks to the hub, in one
place: where, with which certificates, the deadline of each call, and which
calls are retried.

Retries are gRPC's own (a service config with a `retryPolicy`), applied
only to calls that are safe to repeat:

- GetUser, ListBanks, GetQuery, ListQueries: reads.
- EnrollUser: replaces the user's data with the same data.
- CreateQuery: idempotent on `request_id` (a retry returns the same query).
- WatchQuery: a read stream; retried only before its first message arrives.

StartVerification (sends an SMS) and GetReport (each attempt counts
towards the payment-password lockout) are never retried automatically.
Only UNAVAILABLE is retried: the hub did not process the call.

The same safe calls are sent with `wait_for_ready`: while the hub is
unreachable (e.g. restarting) they wait for it within their deadline rather
than failing at once; the channel re-dials every 0.25-5 s. Waiting is not
re-sending, but StartVerification and GetReport still fail at once with
`HubUnavailable`, so the app can tell the user straight away.

Several hub replicas: `target` may list several addresses. The channel then
balances calls over all of them (gRPC's `round_robin`) and watches each
replica's grpc.health.v1 status for the API service on the API port
(client-side health checking, `healthCheckConfig`): a replica that is down
or reports NOT_SERVING (e.g. draining for a restart) gets no new calls
until it is back, and a safe call that was on a replica that died is
re-sent to another by the retry policy. The same balancing and health
checking apply to a single DNS name that resolves to several addresses.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardlookup.pki import HUB_SERVER_NAME, PkiPaths
from cardlookup.resource_names import WRITES_HEALTH_SERVICE as WRITES_HEALTH_SERVICE  # re-exported
from client.tracing import trace_metadata

SERVICE = "cardlookup.hub.v1.CardLookupService"
RETRIED_METHODS = ("GetUser", "ListBanks", "GetQuery", "ListQueries", "EnrollUser", "CreateQuery", "WatchQuery")
"""The calls that are safe to repeat; every other method is sent once."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 3.0
    backoff_multiplier: float = 2.0

    def method_config(self) -> list[dict[str, Any]]:
        """The `methodConfig` part of the channel's service config."""
        return [
            {
                "name": [{"service": SERVICE, "method": m} for m in RETRIED_METHODS],
                "retryPolicy": {
                    "maxAttempts": self.max_attempts,
                    "initialBackoff": f"{self.initial_backoff_s}s",
                    "maxBackoff": f"{self.max_backoff_s}s",
                    "backoffMultiplier": self.backoff_multiplier,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]


def _split_hub_addresses(target: str | Sequence[str]) -> tuple[str, ...]:
    parts = [target] if isinstance(target, str) else list(target)
    addresses = tuple(a.strip() for part in parts for a in part.split(",") if a.strip())
    if not addresses:
        raise ValueError("no hub address: give the hub's host:port (or several, comma-separated)")
    return addresses


def _ip_family(address: str) -> int | None:
    """4 or 6 for an `ip:port` / `[ipv6]:port` literal, None otherwise."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return None
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).version
    except ValueError:
        return None


@dataclass(frozen=True)
class ClientOptions:
    target: str | Sequence[str]
    """host:port of the hub; or several hub replicas, as a list or one
    comma-separated string (`"10.0.0.1:50051,10.0.0.2:50051"`), each an IP
    address with its port (one gRPC `ipv4:`/`ipv6:` target); calls are
    spread over the replicas that are up and SERVING. Kept as given;
    `addresses` is the parsed list."""
    ca: Path
    """The CA the hub's certificate must chain to."""
    cert: Path
    """The app backend's client certificate (R17: the hub accepts no other)."""
    key: Path
    server_name: str = HUB_SERVER_NAME
    """The name the hub's certificate must carry (TLS host verification)."""
    timeout_s: float = 10.0
    """Deadline of each unary call, retries included."""
    create_timeout_s: float = 30.0
    """CreateQuery stores the query durably before answering: a longer deadline."""
    watch_timeout_s: float = 25 * 3600.0
    """Deadline of a whole WatchQuery stream (a report is due within 24 h)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    wait_for_ready: bool = True
    """Safe calls (RETRIED_METHODS) wait for an unreachable hub within their deadline."""
    health_check_service: str = SERVICE
    """The grpc.health.v1 service name each hub replica is watched for on
    its API port (the hub reports it SERVING while it serves the API, reads
    included while its store refuses writes: a lone degraded hub still
    answers reads at once, and its writes fail fast with HubUnavailable and
    a `retry_delay`; across replicas the retry policy re-sends a refused
    CreateQuery/EnrollUser to another replica). WRITES_HEALTH_SERVICE
    instead would take a degraded replica out of rotation for every call."""

    def __post_init__(self) -> None:
        if not isinstance(self.target, str):
            object.__setattr__(self, "target", tuple(self.target))
        addresses = _split_hub_addresses(self.target)
        if len(addresses) > 1:
            families = {_ip_family(a) for a in addresses}
            if None in families or len(families) > 1:
                raise ValueError(
                    "several hub addresses must each be an IP address with its port, all IPv4 "
                    "(10.0.0.1:50051) or all IPv6 ([fd00::1]:50051); to balance over a host name, "
                    "give that one name and let DNS return every replica's address"
                )

    @property
    def addresses(self) -> tuple[str, ...]:
        """The hub address(es) `target` names, in order."""
        return _split_hub_addresses(self.target)

    def channel_target(self) -> str:
        """The gRPC target: the address itself for one hub, an `ipv4:` or
        `ipv6:` list of addresses for several."""
        addresses = self.addresses
        if len(addresses) == 1:
            return addresses[0]
        return f"ipv{_ip_family(addresses[0])}:{','.join(addresses)}"

    def service_config(self) -> str:
        """Retries (RetryPolicy), round_robin over every address, and
        client-side health checking. gRPC core runs the health check when
        the service config has `healthCheckConfig` (no channel option turns
        it on; `grpc.inhibit_health_checking` would turn it off). A server
        without the health service (UNIMPLEMENTED) counts as healthy."""
        return json.dumps(
            {
                "loadBalancingConfig": [{"round_robin": {}}],
                "healthCheckConfig": {"serviceName": self.health_check_service},
                "methodConfig": self.retry.method_config(),
            }
        )

    @classmethod
    def from_pki(cls, pki_dir: Path | str, target: str | Sequence[str], **overrides: Any) -> ClientOptions:
        """Options for a development PKI directory (cardlookup-pki)."""
        pki = PkiPaths(Path(pki_dir))
        return cls(target=target, ca=pki.ca_cert, cert=pki.cert("app-backend"), key=pki.key("app-backend"), **overrides)

    def waits_for_ready(self, method: str) -> bool:
        """Whether `method` waits for an unreachable hub instead of failing at once."""
        return self.wait_for_ready and method in RETRIED_METHODS

    def deadline_s(self, method: str) -> float:
        """The deadline of one call of `method` (retries included)."""
        return {"CreateQuery": self.create_timeout_s, "WatchQuery": self.watch_timeout_s}.get(method, self.timeout_s)

    def call_kwargs(self, method: str) -> dict[str, Any]:
        """What both clients pass with every call of `method`: its deadline
        and whether it waits for an unreachable hub."""
        kwargs: dict[str, Any] = {"timeout": self.deadline_s(method), "wait_for_ready": self.waits_for_ready(method)}
        traced = trace_metadata()  # the app backend's current span, if any (client.tracing)
        if traced:
            kwargs["metadata"] = traced
        return kwargs

    def channel_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.ssl_target_name_override", self.server_name),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", self.service_config()),
            ("grpc.keepalive_time_ms", 30_000),
            # Re-dial a restarting hub quickly (gRPC's default backoff grows to 120 s).
            ("grpc.initial_reconnect_backoff_ms", 250),
            # Not a backoff: gRPC's minimum connect timeout (TCP + TLS), which
            # a loaded hub or network can exceed; a value as short as the
            # backoff fails every dial. 20 s, gRPC's default, said explicitly.
            ("grpc.min_reconnect_backoff_ms", 20_000),
            ("grpc.max_reconnect_backoff_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 0),
        ]
