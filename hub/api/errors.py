"""The one reason table of the hub API: each ErrorReason of the contract
(cardlookup/hub/v1/error_reason.proto) -> its gRPC status code, and the
google.rpc details the hub sends with it besides ErrorInfo.

Every refusal carries a google.rpc.Status in the `grpc-status-details-bin`
trailer: an ErrorInfo (reason, domain "cardlookup.hub.v1", metadata), then
- on INVALID_FIELD, a BadRequest with one field violation: the field named by
  metadata "field", and the refusal's message as its description;
- on SMS_RATE_LIMITED and COOLDOWN_ACTIVE, a RetryInfo whose retry_delay is
  the time from the refusal to metadata "retry_time".
tests/client/test_errors.py checks this table, the proto enum and the
client's classes name the same reasons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2

STATUS_OF_REASON: dict[str, grpc.StatusCode] = {
    "INVALID_FIELD": grpc.StatusCode.INVALID_ARGUMENT,
    "USER_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "REGION_NOT_OPEN": grpc.StatusCode.FAILED_PRECONDITION,
    "ID_DOCUMENT_EXPIRED": grpc.StatusCode.FAILED_PRECONDITION,
    "BANK_NOT_AVAILABLE": grpc.StatusCode.INVALID_ARGUMENT,
    "SMS_RATE_LIMITED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "VERIFICATION_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "VERIFICATION_EXPIRED": grpc.StatusCode.FAILED_PRECONDITION,
    "VERIFICATION_USED": grpc.StatusCode.FAILED_PRECONDITION,
    "SMS_CODE_WRONG": grpc.StatusCode.INVALID_ARGUMENT,
    "VERIFICATION_LOCKED": grpc.StatusCode.FAILED_PRECONDITION,
    "FACE_ATTESTATION_INVALID": grpc.StatusCode.PERMISSION_DENIED,
    "CONSENT_VERSION_MISMATCH": grpc.StatusCode.FAILED_PRECONDITION,
    "COOLDOWN_ACTIVE": grpc.StatusCode.FAILED_PRECONDITION,
    "QUERY_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "REPORT_NOT_READY": grpc.StatusCode.FAILED_PRECONDITION,
    "REPORT_EXPIRED": grpc.StatusCode.FAILED_PRECONDITION,
    "PAYMENT_PASSWORD_WRONG": grpc.StatusCode.PERMISSION_DENIED,
    "PASSWORD_LOCKED": grpc.StatusCode.PERMISSION_DENIED,
    "CALLER_NOT_ALLOWED": grpc.StatusCode.PERMISSION_DENIED,
    "REQUEST_ID_REUSED": grpc.StatusCode.ALREADY_EXISTS,
    "HUB_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "QUERY_IN_PROGRESS": grpc.StatusCode.FAILED_PRECONDITION,
    "REPORT_SEALED_TO_OLD_PASSWORD": grpc.StatusCode.FAILED_PRECONDITION,
    "CARD_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "CARD_CASE_NOT_OPENED": grpc.StatusCode.UNAVAILABLE,
    # The API's limits (hub.api.interceptors, hub.api.limits).
    "MALFORMED_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "MESSAGE_TOO_LARGE": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "RESPONSE_TOO_LARGE": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "WATCH_LIMIT_REACHED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    # Issue 24: sealed under a key-encryption key that is not configured.
    "KEY_NOT_CONFIGURED": grpc.StatusCode.FAILED_PRECONDITION,
}

FIELD_VIOLATION_REASONS = frozenset({"INVALID_FIELD"})
"""Reasons sent with a google.rpc.BadRequest (metadata "field")."""

RETRY_INFO_REASONS = frozenset({"SMS_RATE_LIMITED", "COOLDOWN_ACTIVE"})
"""Reasons sent with a google.rpc.RetryInfo (metadata "retry_time")."""


def status_of(reason: str) -> grpc.StatusCode:
    return STATUS_OF_REASON.get(reason, grpc.StatusCode.FAILED_PRECONDITION)


def extra_details(
    reason: str, message: str, metadata: Mapping[str, str], retry_delay: dt.timedelta | None
) -> list[Message]:
    """The details sent after the ErrorInfo of a refusal (see the module)."""
    extra: list[Message] = []
    if reason in FIELD_VIOLATION_REASONS and metadata.get("field"):
        violation = error_details_pb2.BadRequest.FieldViolation(field=metadata["field"], description=message)
        extra.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if reason in RETRY_INFO_REASONS and retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(retry_delay)
        extra.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return extra
