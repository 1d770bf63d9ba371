"""Every reason of the contract has an exception class and a sentence."""

from __future__ import annotations

import grpc

from cardlookup.hub.v1 import error_reason_pb2
from cardlookup.rpc_errors import HUB_DOMAIN, make_status
from client.errors import (
    BY_REASON,
    SENTENCES,
    CardLookupError,
    CooldownActive,
    PaymentPasswordWrong,
    ReportNotReady,
    SmsCodeWrong,
    from_rpc_error,
)


def test_every_reason_has_a_class_and_a_sentence() -> None:
    names = error_reason_pb2.ErrorReason.keys()
    reasons = {name for name in names if name != "ERROR_REASON_UNSPECIFIED"}
    assert set(BY_REASON) == reasons
    assert set(SENTENCES) == reasons


def test_sentences_use_the_metadata_and_survive_without_it() -> None:
    e = CooldownActive(
        grpc.StatusCode.FAILED_PRECONDITION, "COOLDOWN_ACTIVE", "m", {"retry_time": "2026-01-12T09:00:00Z"}
    )
    assert (
        e.sentence() == "A new lookup is allowed 7 days after the latest report, from 2026-01-12 17:00:00 Beijing time."
    )
    assert e.metadata["retry_time"] == "2026-01-12T09:00:00Z"  # the hub's value, unchanged
    bare = CooldownActive(grpc.StatusCode.FAILED_PRECONDITION, "COOLDOWN_ACTIVE", "m", {})
    assert bare.sentence() == "A new lookup is allowed 7 days after the latest report."
    for reason, cls in BY_REASON.items():
        sentence = cls(grpc.StatusCode.UNKNOWN, reason, "", {}).sentence()
        assert sentence.endswith(".") and "{" not in sentence and len(sentence.split()) >= 3, sentence
    one = SmsCodeWrong(grpc.StatusCode.INVALID_ARGUMENT, "SMS_CODE_WRONG", "m", {"attempts_left": "1"})
    assert one.sentence() == "The SMS code is wrong; 1 attempt left."
    two = PaymentPasswordWrong(grpc.StatusCode.PERMISSION_DENIED, "PAYMENT_PASSWORD_WRONG", "m", {"attempts_left": "2"})
    assert two.sentence() == "The payment password is wrong; 2 attempts left before it locks."
    running = ReportNotReady(grpc.StatusCode.FAILED_PRECONDITION, "REPORT_NOT_READY", "m", {"state": "RUNNING"})
    assert "(the query is running)" in running.sentence()
    unknown = CardLookupError(grpc.StatusCode.INTERNAL, "SOMETHING_NEW", "details", {})
    assert "SOMETHING_NEW" in unknown.sentence()


class _FakeRpcError(grpc.RpcError):
    """A failed call as the sync stack raises it (code, details, trailers)."""

    def __init__(self, status: grpc.Status | None, code: grpc.StatusCode) -> None:
        self._status, self._code = status, code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "details"

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._status.trailing_metadata if self._status else ()  # type: ignore[attr-defined,no-any-return]


def test_from_rpc_error_maps_reason_and_transport_failures() -> None:
    status = make_status(
        grpc.StatusCode.FAILED_PRECONDITION, "COOLDOWN_ACTIVE", "wait", HUB_DOMAIN, {"retry_time": "t"}
    )
    error = from_rpc_error(_FakeRpcError(status, grpc.StatusCode.FAILED_PRECONDITION))
    assert isinstance(error, CooldownActive) and error.metadata == {"retry_time": "t"}
    transport = from_rpc_error(_FakeRpcError(None, grpc.StatusCode.DEADLINE_EXCEEDED))
    assert transport.reason == "HUB_UNAVAILABLE"
