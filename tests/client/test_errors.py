"""Every reason of the contract has an exception class, a category and a
sentence; the one boundary (`translated`, `from_rpc_error`) keeps every
google.rpc detail the hub sends."""

from __future__ import annotations

import datetime as dt
import importlib

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import error_reason_pb2
from cardlookup.pki import PkiPaths
from cardlookup.rpc_errors import HUB_DOMAIN, make_status
from client.aio import AsyncCardLookupClient
from client.errors import (
    BY_REASON,
    CATEGORIES,
    SENTENCES,
    CardLookupError,
    CooldownActive,
    FieldViolation,
    HubUnavailable,
    InvalidField,
    PaymentPasswordWrong,
    ReportNotReady,
    Retryable,
    SmsCodeWrong,
    SmsRateLimited,
    UserMustAct,
    from_rpc_error,
    translated,
)
from client.options import ClientOptions
from hub.api.errors import STATUS_OF_REASON, extra_details
from tests.ports import dead_address


def test_every_reason_has_a_class_and_a_sentence() -> None:
    names = error_reason_pb2.ErrorReason.keys()
    reasons = {name for name in names if name != "ERROR_REASON_UNSPECIFIED"}
    assert set(BY_REASON) == reasons
    assert set(SENTENCES) == reasons
    assert set(STATUS_OF_REASON) == reasons  # derived from cardlookup.hub_reasons


def test_the_hub_sends_bad_request_and_retry_info_where_the_docs_say() -> None:
    bad = extra_details("INVALID_FIELD", "phone is malformed", {"field": "phone"}, None)
    assert [type(d).__name__ for d in bad] == ["BadRequest"]
    assert bad[0].field_violations[0].field == "phone"  # type: ignore[attr-defined]
    retry = extra_details("COOLDOWN_ACTIVE", "m", {"retry_time": "t"}, dt.timedelta(seconds=90))
    assert [type(d).__name__ for d in retry] == ["RetryInfo"]
    assert retry[0].retry_delay.ToTimedelta() == dt.timedelta(seconds=90)  # type: ignore[attr-defined]
    assert extra_details("SMS_CODE_WRONG", "m", {"attempts_left": "4"}, None) == []
    status = make_status(
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "phone is malformed", HUB_DOMAIN, {"field": "phone"}, bad
    )
    error = from_rpc_error(_FakeRpcError(status, grpc.StatusCode.INVALID_ARGUMENT))
    assert error.reason == "INVALID_FIELD" and [v.field for v in error.field_violations] == ["phone"]


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


def test_every_reason_has_exactly_one_category_and_old_names_still_import() -> None:
    for reason, cls in BY_REASON.items():
        assert [c for c in CATEGORIES if issubclass(cls, c)] == [cls.__mro__[1]], reason
        assert issubclass(cls, CardLookupError)
    by_category = {c.__name__: sorted(r for r, cls in BY_REASON.items() if issubclass(cls, c)) for c in CATEGORIES}
    assert by_category["Retryable"] == [
        "CARD_CASE_NOT_OPENED",
        "HUB_UNAVAILABLE",
        "REPORT_NOT_READY",
        "SMS_RATE_LIMITED",
        "WATCH_LIMIT_REACHED",
    ]
    assert {"SMS_CODE_WRONG", "PAYMENT_PASSWORD_WRONG", "CONSENT_VERSION_MISMATCH"} <= set(by_category["UserMustAct"])
    assert {"COOLDOWN_ACTIVE", "PASSWORD_LOCKED", "REGION_NOT_OPEN"} <= set(by_category["Refused"])

    for cls in BY_REASON.values():  # every concrete class keeps its importable name
        assert cls.__module__ == "client.errors"
        assert getattr(importlib.import_module("client.errors"), cls.__name__) is cls


def _status_with(code: grpc.StatusCode, *details: Message) -> grpc.Status:
    packed = []
    for detail in details:
        any_ = any_pb2.Any()
        any_.Pack(detail)
        packed.append(any_)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message="m", details=packed))


def test_retry_info_and_bad_request_details_are_kept() -> None:
    status = _status_with(
        grpc.StatusCode.INVALID_ARGUMENT,
        error_details_pb2.ErrorInfo(reason="INVALID_FIELD", domain=HUB_DOMAIN, metadata={"field": "phone_number"}),
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field="phone_number", description="11 digits"),
            ]
        ),
    )
    error = from_rpc_error(_FakeRpcError(status, grpc.StatusCode.INVALID_ARGUMENT))
    assert isinstance(error, InvalidField) and isinstance(error, UserMustAct)
    assert error.field_violations == (FieldViolation("phone_number", "11 digits"),)
    delay = duration_pb2.Duration(seconds=42)
    status = _status_with(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        error_details_pb2.ErrorInfo(reason="SMS_RATE_LIMITED", domain=HUB_DOMAIN),
        error_details_pb2.RetryInfo(retry_delay=delay),
    )
    error = from_rpc_error(_FakeRpcError(status, grpc.StatusCode.RESOURCE_EXHAUSTED))
    assert isinstance(error, SmsRateLimited) and isinstance(error, Retryable)
    assert error.retry_delay == dt.timedelta(seconds=42)
    newer = from_rpc_error(
        _FakeRpcError(
            _status_with(grpc.StatusCode.FAILED_PRECONDITION, error_details_pb2.ErrorInfo(reason="NEW_REASON")),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
    )
    assert type(newer) is CardLookupError and newer.reason == "NEW_REASON"  # a newer hub's reason still surfaces
    bare = from_rpc_error(_FakeRpcError(None, grpc.StatusCode.INTERNAL))
    assert type(bare) is CardLookupError and bare.reason == "INTERNAL" and bare.retry_delay is None


async def test_the_boundary_translates_a_real_aio_error_and_hides_the_grpc_traceback(pki: PkiPaths) -> None:
    """`translated()` around a real grpc.aio call that fails (no hub on the
    port): HubUnavailable, a Retryable, with no RpcError chained to it."""
    with dead_address() as nowhere:
        options = ClientOptions.from_pki(pki.root, nowhere, timeout_s=0.5)
        async with AsyncCardLookupClient(options) as client:
            with pytest.raises(HubUnavailable) as info, translated():
                await client.stub.StartVerification(svc.StartVerificationRequest(user_id="u1"), timeout=0.5)
    assert isinstance(info.value, Retryable)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert info.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
