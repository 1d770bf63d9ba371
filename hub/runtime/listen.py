"""How the hub's ports are opened: the one-line StartupError an operator
reads when one cannot be, the checks of the server certificates before any
port is bound (and before a reload applies them), and the HTTP/2 keepalive
options of the API and admin ports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cardlookup.tls import channel_credentials
from hub.core.config import HubConfig
from hub.keys.certs import TlsFilesError, certificate_configuration, check_tls_files
from hub.telemetry.metrics import HubMetrics, MetricsEndpoint


class StartupError(RuntimeError):
    """The hub cannot start with this configuration (unreadable keys, a port
    that cannot be bound); the message is one line for the operator."""


SERVER_KEEPALIVE_MS = 60_000
"""The hub pings a client connection silent this long (ms), and drops it if
the ping is not answered within SERVER_KEEPALIVE_TIMEOUT_MS: a client whose
machine vanished stops holding WatchQuery streams."""
SERVER_KEEPALIVE_TIMEOUT_MS = 20_000


def keepalive_options(min_ping_interval: float) -> list[tuple[str, int]]:
    """HTTP/2 keepalive options of the API and admin ports (issue 21 item 3).
    gRPC's defaults refuse a client's pings more often than every 5 minutes
    on a connection sending no data, and after two such pings close it with
    GOAWAY ENHANCE_YOUR_CALM "too_many_pings": a WatchQuery stream idle for
    ~2.5 minutes under the documented client (30 s pings) was cut. Pings are
    accepted every `min_ping_interval` seconds (`timings.api_min_ping_interval`),
    also with no call open."""
    min_ping = int(min_ping_interval * 1000)
    return [
        ("grpc.http2.min_ping_interval_without_data_ms", min_ping),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", SERVER_KEEPALIVE_TIMEOUT_MS),
    ]


def check_tls(config: HubConfig) -> None:
    """Both certificate sets are usable (issue 24 item 3): parsed, each key
    the certificate's, valid now, chained to the configured CA; checked at
    start before any port is bound, and by a reload before anything is
    applied. The message names the setting and the file."""
    for section, tls in (("api_tls", config.api_tls), ("bank_tls", config.bank_tls)):
        try:
            check_tls_files(section, tls, chained=section == "api_tls")
            certificate_configuration(tls)
            channel_credentials(Path(tls.ca), Path(tls.cert), Path(tls.key))
        except TlsFilesError as error:
            raise StartupError(str(error)) from None
        except (OSError, ValueError):
            raise StartupError(f"{section}: a certificate, key or CA file cannot be read") from None


def bind(address: str, key: str, add_port: Callable[[], int]) -> int:
    # grpc raises a bare RuntimeError (and logs the errno itself) when a port
    # cannot be bound; the operator needs the key and the address instead.
    try:
        return add_port()
    except RuntimeError:
        raise StartupError(f"{key}: cannot listen on {address} (in use, or not an address of this host)") from None


def bind_metrics(metrics: HubMetrics, address: str) -> MetricsEndpoint:
    try:
        return MetricsEndpoint(metrics.registry, address)
    except OSError:
        raise StartupError(
            f"metrics_listen: cannot listen on {address} (in use, or not an address of this host)"
        ) from None
