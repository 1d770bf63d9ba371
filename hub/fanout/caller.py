"""One attempt of ListCards at one bank, and what its result means.

The attempt streams the answer through the validator; the outcome is:
  Answered   a complete, valid, masked answer;
  Rejected   final: the bank broke the contract (validation reason), or
             refused the call (BANK_REFUSED:<its ErrorInfo reason>);
  Transient  retry later (network, deadline, overload, server errors), with
             `identity=True` when the TLS handshake failed the bank's name
             check (several in a row make WRONG_BANK_CERTIFICATE).
Nothing from the bank's free-text error message is kept: only status code
names and sanitised ErrorInfo reasons.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import grpc

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.rpc_errors import error_info_of
from hub.fanout.validation import AnswerRejected, AnswerValidator, BankAnswer
from hub.telemetry import tracing

_FINAL_CODES = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT}
_IDENTITY_MARKERS = (
    "Hostname Verification",
    "Peer name",
    "not in peer certificate",
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
)
_SAFE_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,62}")


@dataclass(frozen=True)
class Answered:
    answer: BankAnswer


@dataclass(frozen=True)
class Rejected:
    reason: str


@dataclass(frozen=True)
class Transient:
    reason: str
    """A status code name, e.g. UNAVAILABLE."""
    slow_down: bool = False
    identity: bool = False


AttemptResult = Answered | Rejected | Transient


def safe_reason(reason: str) -> str:
    """A bank-supplied reason, kept only if it is an UPPER_SNAKE token."""
    return reason if _SAFE_REASON.fullmatch(reason) else "UNSPECIFIED"


def classify(error: grpc.aio.AioRpcError) -> Rejected | Transient:
    code = error.code()
    details = error.details() or ""
    if code in _FINAL_CODES:
        info = error_info_of(error)
        reason = safe_reason(info.reason) if info and info.reason else code.name
        return Rejected(f"BANK_REFUSED:{reason}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        return Rejected("MESSAGE_TOO_LARGE")
    if code == grpc.StatusCode.UNAVAILABLE and any(m in details for m in _IDENTITY_MARKERS):
        return Transient("WRONG_BANK_CERTIFICATE", identity=True)
    return Transient(code.name, slow_down=code == grpc.StatusCode.RESOURCE_EXHAUSTED)


@tracing.traced_attempt
async def attempt(
    stub: bank_grpc.CardDirectoryServiceStub,
    request: bank_pb.ListCardsRequest,
    bank_code: str,
    deadline_s: float,
) -> AttemptResult:
    """Calls ListCards once; never raises for what the bank does."""
    validator = AnswerValidator(bank_code)
    # grpc-stubs types the stub as sync; on an aio channel the call is async-iterable.
    call: Any = stub.ListCards(request, timeout=deadline_s, metadata=tracing.outgoing_metadata())
    try:
        async for message in call:
            validator.feed(message)
        return Answered(validator.finish())
    except AnswerRejected as rejected:
        call.cancel()
        return Rejected(rejected.reason)
    except grpc.aio.AioRpcError as error:
        return classify(error)
    except asyncio.CancelledError:
        call.cancel()
        raise
