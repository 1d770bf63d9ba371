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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardlookup.pki import HUB_SERVER_NAME, PkiPaths

SERVICE = "cardlookup.hub.v1.CardLookupService"
RETRIED_METHODS = ("GetUser", "ListBanks", "GetQuery", "ListQueries", "EnrollUser", "CreateQuery", "WatchQuery")
"""The calls that are safe to repeat; every other method is sent once."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 3.0
    backoff_multiplier: float = 2.0

    def service_config(self) -> str:
        return json.dumps(
            {
                "methodConfig": [
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
            }
        )


@dataclass(frozen=True)
class ClientOptions:
    target: str
    """host:port of the hub."""
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

    @classmethod
    def from_pki(cls, pki_dir: Path | str, target: str, **overrides: Any) -> ClientOptions:
        """Options for a development PKI directory (cardlookup-pki)."""
        pki = PkiPaths(Path(pki_dir))
        return cls(target=target, ca=pki.ca_cert, cert=pki.cert("app-backend"), key=pki.key("app-backend"), **overrides)

    def waits_for_ready(self, method: str) -> bool:
        """Whether `method` waits for an unreachable hub instead of failing at once."""
        return self.wait_for_ready and method in RETRIED_METHODS

    def channel_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.ssl_target_name_override", self.server_name),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", self.retry.service_config()),
            ("grpc.keepalive_time_ms", 30_000),
            # Re-dial a restarting hub quickly (gRPC's default backoff grows to 120 s).
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 0),
        ]
