"""One long-lived mTLS channel per bank.

The hub presents its client certificate, trusts the configured CA, and
checks that the bank's server certificate names the bank code the registry
says lives at that address (`grpc.ssl_target_name_override` = the bank's
TLS name): a certificate issued to another bank fails the handshake, so one
bank cannot answer for another. Channels are created lazily inside the
running event loop and reused by every query.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.tls import channel_credentials
from hub.config import BankEndpoint, Timings, TlsFiles

MAX_RECEIVE_BYTES = 64 * 1024
"""The transport refuses bigger messages (RESOURCE_EXHAUSTED, "larger than
max"); the validator's own limit per message is far lower still."""


def channel_options(endpoint: BankEndpoint, timings: Timings) -> list[tuple[str, int | str]]:
    reconnect_ms = max(1, int(timings.retry_initial.total_seconds() * 1000))
    return [
        ("grpc.ssl_target_name_override", endpoint.tls_name()),
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.max_send_message_length", MAX_RECEIVE_BYTES),
        # The hub retries itself, with its own backoff, breaker and 24 h window.
        ("grpc.enable_retries", 0),
        # Reconnect promptly once a bank that was down comes back.
        ("grpc.initial_reconnect_backoff_ms", reconnect_ms),
        ("grpc.min_reconnect_backoff_ms", reconnect_ms),
        ("grpc.max_reconnect_backoff_ms", max(reconnect_ms, int(timings.retry_max.total_seconds() * 1000))),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]


class BankChannels:
    """Owns the channels to banks; close() on shutdown."""

    def __init__(self, tls: TlsFiles, timings: Timings) -> None:
        self._tls = tls
        self._timings = timings
        self._credentials: grpc.ChannelCredentials | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}

    def stub(self, endpoint: BankEndpoint) -> bank_grpc.CardDirectoryServiceStub:
        channel = self._channels.get(endpoint.code)
        if channel is None:
            if self._credentials is None:
                self._credentials = channel_credentials(Path(self._tls.ca), Path(self._tls.cert), Path(self._tls.key))
            channel = grpc.aio.secure_channel(
                endpoint.address, self._credentials, options=channel_options(endpoint, self._timings)
            )
            self._channels[endpoint.code] = channel
        return bank_grpc.CardDirectoryServiceStub(channel)

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close(None)
