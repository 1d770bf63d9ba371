"""gRPC errors with a machine-readable reason (google.rpc.ErrorInfo).

Servers abort with `abort(context, code, reason, message, domain, metadata)`;
clients read the reason back with `error_info_of(error)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
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
    retry_delay_s: float | None = None,
) -> grpc.Status:
    """With `retry_delay_s`, a google.rpc.RetryInfo detail follows the
    ErrorInfo: how long the caller should wait before trying again."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=dict(metadata or {})))
    details = [detail]
    if retry_delay_s is not None:
        retry = any_pb2.Any()
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromMilliseconds(int(retry_delay_s * 1000))
        retry.Pack(info)
        details.append(retry)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(status)


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    domain: str,
    metadata: Mapping[str, str] | None = None,
    retry_delay_s: float | None = None,
) -> NoReturn:
    """Ends the RPC with `code` and an ErrorInfo detail carrying `reason`
    (and a RetryInfo with `retry_delay_s`, when given)."""
    await context.abort_with_status(make_status(code, reason, message, domain, metadata, retry_delay_s))  # type: ignore[attr-defined]
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
