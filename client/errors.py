"""Exceptions of the hub client, and the one place that makes them.

Every failed call, in the async and the sync client alike, passes through
`translated()` (a context manager around the stub call), which turns the
grpc error (grpc.RpcError / grpc.aio.AioRpcError) into one of these with
`from_rpc_error`: callers never see a raw RpcError.

One class per ErrorReason of the hub contract (the one reason table,
cardlookup.hub_reasons, says its category and sentence), each carrying the reason, the
gRPC status code, the ErrorInfo metadata (e.g. `retry_time` of
COOLDOWN_ACTIVE) and, when the hub sends them, the other google.rpc.Status
details (RetryInfo as `retry_delay`, BadRequest as `field_violations`). The
classes are grouped under three category bases, so that an app can handle a
whole kind of failure at once:

- `Retryable`: the same call can succeed later with nothing changed by the
  user (the hub is unreachable, an SMS was sent moments ago, the report is
  not ready yet).
- `UserMustAct`: the user, or the app for them, must do something first
  (retype a code or a password, request a new code, redo the face check,
  accept the new notice, enrol, fix a field).
- `Refused`: the hub's rules say no for now, whatever the user does (region
  not open R2, cooldown and one query at a time R12, password locked R10,
  report deleted R11, a caller that is not the app backend R17).

    try:
        client.create_query(...)
    except CooldownActive as e:
        show(f"try again after {e.metadata['retry_time']}")
    except UserMustAct as e:          # e.g. SmsCodeWrong: ask again
        show(e.sentence())
    except CardLookupError as e:      # any other failure
        show(e.sentence())
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from cardlookup.hub_reasons import REASONS


@dataclass(frozen=True)
class FieldViolation:
    """One entry of a google.rpc.BadRequest detail."""

    field: str
    description: str


class CardLookupError(Exception):
    """A call to the hub failed. `reason` is the ErrorInfo reason (an
    ErrorReason name), or the status code name when the hub sent none (e.g.
    a transport failure). `retry_delay` (google.rpc.RetryInfo) and
    `field_violations` (google.rpc.BadRequest) are set when the hub sent
    those details."""

    reason_name = ""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str],
        *,
        retry_delay: dt.timedelta | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata
        self.retry_delay = retry_delay
        self.field_violations = field_violations

    def sentence(self) -> str:
        """The error as a plain sentence for a person, with the facts of the
        metadata: times in Beijing time, counts with their noun. (`metadata`
        keeps the hub's values: times as RFC 3339 UTC, e.g.
        `2026-01-12T09:00:00Z`.)"""
        template = SENTENCES.get(self.reason)
        if template is None:
            return f"The hub refused the request ({self.reason}): {self.message or self.code.name}."
        try:
            return template.format(**{key: readable(key, value) for key, value in self.metadata.items()})
        except KeyError:  # a hub that left out a metadata key still gets a sentence
            return _without_facts(template)


class Retryable(CardLookupError):
    """The same call can succeed later with nothing changed by the user
    (`retry_delay` or a `retry_time` in the metadata says when, if known)."""


class UserMustAct(CardLookupError):
    """The user, or the app on their behalf, must do something before a call
    can succeed: the sentence says what."""


class Refused(CardLookupError):
    """The hub's rules refuse this for now, whatever the user does (the
    sentence says until when, if there is an end)."""


class InvalidField(UserMustAct):
    reason_name = "INVALID_FIELD"


class UserNotFound(UserMustAct):
    reason_name = "USER_NOT_FOUND"


class RegionNotOpen(Refused):
    reason_name = "REGION_NOT_OPEN"


class IdDocumentExpired(UserMustAct):
    reason_name = "ID_DOCUMENT_EXPIRED"


class BankNotAvailable(UserMustAct):
    reason_name = "BANK_NOT_AVAILABLE"


class SmsRateLimited(Retryable):
    reason_name = "SMS_RATE_LIMITED"


class VerificationNotFound(UserMustAct):
    reason_name = "VERIFICATION_NOT_FOUND"


class VerificationExpired(UserMustAct):
    reason_name = "VERIFICATION_EXPIRED"


class VerificationUsed(UserMustAct):
    reason_name = "VERIFICATION_USED"


class SmsCodeWrong(UserMustAct):
    reason_name = "SMS_CODE_WRONG"


class VerificationLocked(UserMustAct):
    reason_name = "VERIFICATION_LOCKED"


class FaceAttestationInvalid(UserMustAct):
    reason_name = "FACE_ATTESTATION_INVALID"


class ConsentVersionMismatch(UserMustAct):
    reason_name = "CONSENT_VERSION_MISMATCH"


class CooldownActive(Refused):
    reason_name = "COOLDOWN_ACTIVE"


class QueryNotFound(Refused):
    reason_name = "QUERY_NOT_FOUND"


class ReportNotReady(Retryable):
    reason_name = "REPORT_NOT_READY"


class ReportExpired(Refused):
    reason_name = "REPORT_EXPIRED"


class PaymentPasswordWrong(UserMustAct):
    reason_name = "PAYMENT_PASSWORD_WRONG"


class PasswordLocked(Refused):
    reason_name = "PASSWORD_LOCKED"


class CallerNotAllowed(Refused):
    reason_name = "CALLER_NOT_ALLOWED"


class RequestIdReused(UserMustAct):
    reason_name = "REQUEST_ID_REUSED"


class HubUnavailable(Retryable):
    """Also raised for transport failures (no ErrorInfo): UNAVAILABLE,
    DEADLINE_EXCEEDED, a failed TLS handshake."""

    reason_name = "HUB_UNAVAILABLE"


class QueryInProgress(Refused):
    reason_name = "QUERY_IN_PROGRESS"


class ReportSealedToOldPassword(Refused):
    reason_name = "REPORT_SEALED_TO_OLD_PASSWORD"


class CardNotFound(UserMustAct):
    reason_name = "CARD_NOT_FOUND"


class CardCaseNotOpened(Retryable):
    reason_name = "CARD_CASE_NOT_OPENED"


class MalformedRequest(UserMustAct):
    """The request bytes are not a valid message of the method: a bug in the
    app (or a mismatched contract version)."""

    reason_name = "MALFORMED_REQUEST"


class MessageTooLarge(UserMustAct):
    reason_name = "MESSAGE_TOO_LARGE"


class ResponseTooLarge(UserMustAct):
    reason_name = "RESPONSE_TOO_LARGE"


class WatchLimitReached(Retryable):
    reason_name = "WATCH_LIMIT_REACHED"


class KeyNotConfigured(Refused):
    """The hub holds the user's data sealed under a key its operator has not
    configured (any more): no retry helps until the operator acts."""

    reason_name = "KEY_NOT_CONFIGURED"


CATEGORIES: tuple[type[CardLookupError], ...] = (Retryable, UserMustAct, Refused)


def _reason_classes() -> dict[str, type[CardLookupError]]:
    """Each reason of the one reason table (cardlookup.hub_reasons) -> its
    class: the one written above (named after the reason, under the table's
    category; tests/kernel/test_hub_reasons.py checks they agree), or, for a
    reason added to the table since, one made here the same way."""
    bases = {base.__name__: base for base in CATEGORIES}
    classes: dict[str, type[CardLookupError]] = {}
    for reason in REASONS:
        cls = globals().get(reason.class_name)
        if cls is None:
            cls = type(
                reason.class_name, (bases[reason.category],), {"reason_name": reason.name, "__module__": __name__}
            )
            globals()[reason.class_name] = cls
        classes[reason.name] = cls
    return classes


BY_REASON: dict[str, type[CardLookupError]] = _reason_classes()
"""Each ErrorReason of the contract -> its exception class."""

SENTENCES: dict[str, str] = {reason.name: reason.sentence for reason in REASONS}
"""Each ErrorReason -> its sentence template (cardlookup.hub_reasons)."""


BEIJING = dt.timezone(dt.timedelta(hours=8), "Beijing time")
TIME_KEYS = frozenset({"retry_time", "unlock_time", "expire_time", "password_reset_time"})


def readable(key: str, value: str) -> str:
    """A metadata value as a sentence shows it: RFC 3339 times in Beijing
    time (the service's users are in China), `attempts_left` with its noun,
    a query state in words."""
    if key in TIME_KEYS:
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") + " Beijing time"
    if key == "state":  # REPORT_NOT_READY: ACCEPTED / RUNNING
        return value.lower()
    if key == "attempts_left":
        return f"{value} attempt" if value == "1" else f"{value} attempts"
    return value


def _without_facts(template: str) -> str:
    """The sentence up to the clause that would name the missing fact."""
    head = template[: template.index("{")]
    cut = max(head.rfind(sep) for sep in (", ", " (", "; ", ": "))
    return (head[:cut] if cut > 0 else head.rstrip()) + "."


_TRANSPORT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class _Details:
    """What a google.rpc.Status in the trailers carried."""

    info: error_details_pb2.ErrorInfo | None = None
    retry_delay: dt.timedelta | None = None
    field_violations: tuple[FieldViolation, ...] = ()


def _details(error: grpc.RpcError) -> _Details:
    # (key, value) pairs at run time, whatever grpc-stubs says (`_Metadatum`).
    trailers = cast(Iterable[tuple[str, bytes]], error.trailing_metadata() or ())
    for key, value in trailers:
        if key != _STATUS_DETAILS_KEY:
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:  # a garbled detail must not hide the failure itself
            return _Details()
        info, delay, violations = None, None, []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                delay = retry.retry_delay.ToTimedelta()
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        return _Details(info, delay, tuple(violations))
    return _Details()


def from_rpc_error(error: grpc.RpcError) -> CardLookupError:
    """The client exception for a failed call (sync or grpc.aio): the class
    of the ErrorInfo reason; HubUnavailable for a transport failure without
    one; a plain CardLookupError for a reason this client does not know (a
    newer hub) or a bare status."""
    code = error.code()
    message = error.details() or ""
    d = _details(error)
    if d.info is not None and d.info.reason:
        cls, reason, metadata = BY_REASON.get(d.info.reason, CardLookupError), d.info.reason, dict(d.info.metadata)
    elif code in _TRANSPORT:
        cls, reason, metadata = HubUnavailable, "HUB_UNAVAILABLE", {}
    else:
        cls, reason, metadata = CardLookupError, code.name, {}
    return cls(code, reason, message, metadata, retry_delay=d.retry_delay, field_violations=d.field_violations)


class translated:
    """The client boundary: `with translated(): <stub call>` re-raises a
    grpc error as the client's exception (`from_rpc_error`), without the
    grpc traceback chained to it. Both clients wrap every stub call, unary
    or streaming, sync or async, in it; nothing else catches RpcError."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, grpc.RpcError):
            raise from_rpc_error(exc) from None
