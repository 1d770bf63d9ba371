"""gRPC errors with a machine-readable reason (google.rpc.ErrorInfo).

Servers abort with `abort(context, code, reason, message, domain, metadata)`;
clients read the reason back with `error_info_of(error)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

BANK_DOMAIN = "cardlookup.bank.v1"
HUB_DOMAIN = "cardlookup.hub.v1"


def make_status(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    domain: str,
    metadata: Mapping[str, str] | None = None,
    extra: Sequence[Message] = (),
    retry_delay_s: float | None = None,
) -> grpc.Status:
    """A status whose google.rpc.Status details are the ErrorInfo, then the
    `extra` details (e.g. google.rpc.BadRequest, google.rpc.RetryInfo); with
    `retry_delay_s` and no RetryInfo among them, a google.rpc.RetryInfo
    follows: how long the caller should wait before trying again."""
    messages: list[Message] = [
        error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=dict(metadata or {})),
        *extra,
    ]
    if retry_delay_s is not None and not any(isinstance(m, error_details_pb2.RetryInfo) for m in extra):
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromMilliseconds(int(retry_delay_s * 1000))
        messages.append(info)
    details = []
    for message_ in messages:
        detail = any_pb2.Any()
        detail.Pack(message_)
        details.append(detail)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(status)


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    domain: str,
    metadata: Mapping[str, str] | None = None,
    extra: Sequence[Message] = (),
    retry_delay_s: float | None = None,
) -> NoReturn:
    """Ends the RPC with `code` and an ErrorInfo detail carrying `reason`
    (then the `extra` details, and a RetryInfo with `retry_delay_s`)."""
    status = make_status(code, reason, message, domain, metadata, extra, retry_delay_s)
    await context.abort_with_status(status)  # type: ignore[attr-defined]
    raise AssertionError("abort_with_status returned")  # pragma: no cover


@dataclass(frozen=True)
class ErrorInfo:
    reason: str
    domain: str
    metadata: dict[str, str] = field(default_factory=dict)


def error_info_from_trailers(trailing_metadata: object) -> ErrorInfo | None:
    """Finds the ErrorInfo in a call's trailing metadata, if any."""
    for key, value in trailing_metadata or ():  # type: ignore[attr-defined]
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return ErrorInfo(info.reason, info.domain, dict(info.metadata))
    return None


def error_info_of(error: grpc.RpcError) -> ErrorInfo | None:
    """The ErrorInfo of a failed call (sync or grpc.aio), if the server sent one."""
    trailers = error.trailing_metadata()
    return error_info_from_trailers(trailers)


__all__ = ["BANK_DOMAIN", "HUB_DOMAIN", "ErrorInfo", "abort", "error_info_of", "make_status"]


def status_code_name(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The name of the status a server call ended with, for metrics and
    traces: the code the handler set, else OK when nothing escaped it,
    UNKNOWN for an exception (what the client sees), CANCELLED when the call
    was cancelled (asyncio.CancelledError)."""
    code = None
    with contextlib.suppress(Exception):
        code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    if error is None:
        return "OK"
    return "UNKNOWN" if isinstance(error, Exception) else "CANCELLED"
