"""The hub API's refusals as the one reason table (cardlookup.hub_reasons)
says them: each ErrorReason of the contract -> its gRPC status code, and the
google.rpc details the hub sends with it besides ErrorInfo.

Every refusal carries a google.rpc.Status in the `grpc-status-details-bin`
trailer: an ErrorInfo (reason, domain "cardlookup.hub.v1", metadata), then
- on INVALID_FIELD, a BadRequest with one field violation: the field named by
  metadata "field", and the refusal's message as its description;
- on SMS_RATE_LIMITED and COOLDOWN_ACTIVE, a RetryInfo whose retry_delay is
  the time from the refusal to metadata "retry_time".
tests/kernel/test_hub_reasons.py checks the table against the proto and the
docs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from cardlookup.hub_reasons import BAD_REQUEST, REASONS, RETRY_INFO

STATUS_OF_REASON: dict[str, grpc.StatusCode] = {reason.name: reason.code for reason in REASONS}
"""Each ErrorReason -> the status code the hub refuses with (cardlookup.hub_reasons)."""

FIELD_VIOLATION_REASONS = frozenset(reason.name for reason in REASONS if reason.details == BAD_REQUEST)
"""Reasons sent with a google.rpc.BadRequest (metadata "field")."""

RETRY_INFO_REASONS = frozenset(reason.name for reason in REASONS if reason.details == RETRY_INFO)
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
