"""Calling a bank's optional CardCaseService ("not my card", issue 12).

One OpenCardCase call per user request, with the bank-call policy's
`case_timeout` (hub.fanout.policy, from `timings.attempt_timeout`): the user
is waiting, and retrying is theirs (the bank's answer is idempotent on query
id + card_ref). The channels are the hub's bank channels' kind (the same
mTLS credentials and options: the bank's certificate must name the bank),
owned here, created lazily and closed on stop.

Outcomes:
  Opened          the bank opened (or already had) the case; its answer is
                  validated (reference shape, text lengths, no digit runs
                  that look like a card number).
  NotOffered      UNIMPLEMENTED: the bank has no case service; the hub gives
                  the user the announcement's advice instead.
  Failed          anything else (unreachable, refused, a malformed answer):
                  a sanitised reason, nothing recorded, the user may retry.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.rpc_errors import error_info_of
from cardlookup.tls import channel_credentials
from hub.core.config import BankEndpoint, HubConfig
from hub.fanout.caller import safe_reason
from hub.fanout.channels import bank_target, channel_options
from hub.fanout.policy import BankCallPolicy
from hub.fanout.validation import looks_like_card_number

_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TEXT = 500


@dataclass(frozen=True)
class Opened:
    case_reference: str
    status: bank_pb.CardCaseStatus
    next_step: str
    next_step_english: str


@dataclass(frozen=True)
class NotOffered:
    pass


@dataclass(frozen=True)
class Failed:
    reason: str


CaseResult = Opened | NotOffered | Failed


def check_answer(answer: bank_pb.OpenCardCaseResponse) -> CaseResult:
    texts = (answer.next_step, answer.next_step_english)
    if not _REFERENCE.fullmatch(answer.case_reference):
        return Failed("BAD_CASE_REFERENCE")
    if any(not t.strip() or len(t) > MAX_TEXT or looks_like_card_number(t) for t in texts):
        return Failed("BAD_NEXT_STEP")
    status = answer.status
    if status not in (bank_pb.CARD_CASE_STATUS_RECEIVED, bank_pb.CARD_CASE_STATUS_CARD_SUSPENDED):
        status = bank_pb.CARD_CASE_STATUS_RECEIVED  # the contract: unknown counts as RECEIVED
    return Opened(answer.case_reference, status, answer.next_step, answer.next_step_english)


class CaseCaller:
    def __init__(self, config: HubConfig) -> None:
        self._config = config
        self._policy = BankCallPolicy.from_timings(config.timings)
        self._credentials: grpc.ChannelCredentials | None = None
        self._seen = b""
        """The bytes of the certificate files the credentials were built from."""
        self._channels: dict[str, tuple[BankEndpoint, grpc.aio.Channel]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def reconfigure(self, config: HubConfig) -> None:
        """A reloaded configuration (issue 19 item 4: this path kept its first
        credentials and addresses): later calls use its bank addresses and
        timings, and, when `bank_tls` names other files or their content
        changed, its client certificate; channels that no longer fit are
        closed and re-dialled on their next use."""
        changed_tls = config.bank_tls != self._config.bank_tls or (
            self._credentials is not None and _tls_bytes(config) != self._seen
        )
        self._config = config
        self._policy = BankCallPolicy.from_timings(config.timings)
        if changed_tls:
            self._credentials = None
        for code, (endpoint, channel) in list(self._channels.items()):
            current = config.bank(code)
            if changed_tls or current is None or not _same_route(current, endpoint):
                del self._channels[code]
                self._close_later(channel)

    def _stub(self, endpoint: BankEndpoint) -> bank_grpc.CardCaseServiceStub:
        entry = self._channels.get(endpoint.code)
        if entry is not None and not _same_route(entry[0], endpoint):
            del self._channels[endpoint.code]
            self._close_later(entry[1])
            entry = None
        if entry is None:
            if self._credentials is None:
                tls = self._config.bank_tls
                self._seen = _tls_bytes(self._config)
                self._credentials = channel_credentials(Path(tls.ca), Path(tls.cert), Path(tls.key))
            channel = grpc.aio.secure_channel(
                bank_target(endpoint), self._credentials, options=channel_options(endpoint, self._policy)
            )
            entry = self._channels[endpoint.code] = (endpoint, channel)
        return bank_grpc.CardCaseServiceStub(entry[1])

    def _close_later(self, channel: grpc.aio.Channel) -> None:
        task = asyncio.get_running_loop().create_task(channel.close(self._policy.channel_grace))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def open_case(self, endpoint: BankEndpoint, request: bank_pb.OpenCardCaseRequest) -> CaseResult:
        """Never raises for what the bank does."""
        timeout = self._policy.case_timeout
        try:
            # grpc-stubs types the stub as sync; on an aio channel the call is awaitable.
            call: Any = self._stub(endpoint).OpenCardCase(request, timeout=timeout)
            answer: bank_pb.OpenCardCaseResponse = await call
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return NotOffered()
            info = error_info_of(error)
            reason = safe_reason(info.reason) if info and info.reason else error.code().name
            return Failed(reason)
        return check_answer(answer)

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for _, channel in channels.values():
            await channel.close(None)
        for task in list(self._closing):
            task.cancel()


def _same_route(a: BankEndpoint, b: BankEndpoint) -> bool:
    return (a.address, a.tls_name()) == (b.address, b.tls_name())


def _tls_bytes(config: HubConfig) -> bytes:
    tls = config.bank_tls
    try:
        return b"\0".join(Path(p).read_bytes() for p in (tls.ca, tls.cert, tls.key))
    except OSError:
        return b""
