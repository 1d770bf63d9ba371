"""Exceptions of the hub client: one class per ErrorReason of the hub
contract, each carrying the reason, the gRPC status code and the ErrorInfo
metadata (e.g. `retry_time` of COOLDOWN_ACTIVE). gRPC errors are turned into
these at the client boundary; callers never see a raw RpcError.

    try:
        client.create_query(...)
    except CooldownActive as e:
        show(f"try again after {e.metadata['retry_time']}")
    except CardLookupError as e:      # any other refusal
        show(e.sentence())
"""

from __future__ import annotations

import datetime as dt

import grpc

from cardlookup.rpc_errors import error_info_of


class CardLookupError(Exception):
    """A call to the hub failed. `reason` is the ErrorInfo reason (an
    ErrorReason name), or the status code name when the hub sent none (e.g.
    a transport failure)."""

    reason_name = ""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata

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


class InvalidField(CardLookupError):
    reason_name = "INVALID_FIELD"


class UserNotFound(CardLookupError):
    reason_name = "USER_NOT_FOUND"


class RegionNotOpen(CardLookupError):
    reason_name = "REGION_NOT_OPEN"


class IdDocumentExpired(CardLookupError):
    reason_name = "ID_DOCUMENT_EXPIRED"


class BankNotAvailable(CardLookupError):
    reason_name = "BANK_NOT_AVAILABLE"


class SmsRateLimited(CardLookupError):
    reason_name = "SMS_RATE_LIMITED"


class VerificationNotFound(CardLookupError):
    reason_name = "VERIFICATION_NOT_FOUND"


class VerificationExpired(CardLookupError):
    reason_name = "VERIFICATION_EXPIRED"


class VerificationUsed(CardLookupError):
    reason_name = "VERIFICATION_USED"


class SmsCodeWrong(CardLookupError):
    reason_name = "SMS_CODE_WRONG"


class VerificationLocked(CardLookupError):
    reason_name = "VERIFICATION_LOCKED"


class FaceAttestationInvalid(CardLookupError):
    reason_name = "FACE_ATTESTATION_INVALID"


class ConsentVersionMismatch(CardLookupError):
    reason_name = "CONSENT_VERSION_MISMATCH"


class CooldownActive(CardLookupError):
    reason_name = "COOLDOWN_ACTIVE"


class QueryNotFound(CardLookupError):
    reason_name = "QUERY_NOT_FOUND"


class ReportNotReady(CardLookupError):
    reason_name = "REPORT_NOT_READY"


class ReportExpired(CardLookupError):
    reason_name = "REPORT_EXPIRED"


class PaymentPasswordWrong(CardLookupError):
    reason_name = "PAYMENT_PASSWORD_WRONG"


class PasswordLocked(CardLookupError):
    reason_name = "PASSWORD_LOCKED"


class CallerNotAllowed(CardLookupError):
    reason_name = "CALLER_NOT_ALLOWED"


class RequestIdReused(CardLookupError):
    reason_name = "REQUEST_ID_REUSED"


class HubUnavailable(CardLookupError):
    """Also raised for transport failures (no ErrorInfo): UNAVAILABLE,
    DEADLINE_EXCEEDED, a failed TLS handshake."""

    reason_name = "HUB_UNAVAILABLE"


class QueryInProgress(CardLookupError):
    reason_name = "QUERY_IN_PROGRESS"


class ReportSealedToOldPassword(CardLookupError):
    reason_name = "REPORT_SEALED_TO_OLD_PASSWORD"


class CardNotFound(CardLookupError):
    reason_name = "CARD_NOT_FOUND"


class CardCaseNotOpened(CardLookupError):
    reason_name = "CARD_CASE_NOT_OPENED"


BY_REASON: dict[str, type[CardLookupError]] = {
    cls.reason_name: cls for cls in CardLookupError.__subclasses__() if cls.reason_name
}

SENTENCES: dict[str, str] = {
    "INVALID_FIELD": "The request has a missing or malformed field: {field}.",
    "USER_NOT_FOUND": "This user is not enrolled with the card-lookup service.",
    "REGION_NOT_OPEN": "The card-lookup service is not open yet in the user's region ({region_code}).",
    "ID_DOCUMENT_EXPIRED": "The user's identity document has expired ({id_expiry_date}); update it first.",
    "BANK_NOT_AVAILABLE": "A chosen bank is not available for lookups ({bank_code}).",
    "SMS_RATE_LIMITED": "An SMS code was sent moments ago; another can be requested after {retry_time}.",
    "VERIFICATION_NOT_FOUND": "That verification is unknown; request a new SMS code.",
    "VERIFICATION_EXPIRED": "The SMS code has expired; request a new one.",
    "VERIFICATION_USED": "That SMS code was already used for a query; request a new one.",
    "SMS_CODE_WRONG": "The SMS code is wrong; {attempts_left} left.",
    "VERIFICATION_LOCKED": "Too many wrong SMS codes; request a new one.",
    "FACE_ATTESTATION_INVALID": "Face verification did not pass: the attestation is {problem}.",
    "CONSENT_VERSION_MISMATCH": "The authorization notice changed; show version {current_version} and ask again.",
    "COOLDOWN_ACTIVE": "A new lookup is allowed 7 days after the latest report, from {retry_time}.",
    "QUERY_NOT_FOUND": "There is no such query for this user.",
    "REPORT_NOT_READY": "The report is not ready yet (the query is {state}); an SMS will tell you when it is.",
    "REPORT_EXPIRED": "The report was deleted 7 days after it was generated, on {expire_time}.",
    "PAYMENT_PASSWORD_WRONG": "The payment password is wrong; {attempts_left} left before it locks.",
    "PASSWORD_LOCKED": "The payment password is locked after repeated failures, until {unlock_time}.",
    "CALLER_NOT_ALLOWED": "This client is not allowed to call the hub: only the app backend may.",
    "REQUEST_ID_REUSED": "That request id was already used for a different query.",
    "HUB_UNAVAILABLE": "The hub cannot be reached right now; try again later.",
    "QUERY_IN_PROGRESS": "Another lookup is still running ({query_id}); wait for its report.",
    "REPORT_SEALED_TO_OLD_PASSWORD": (
        "The report was sealed to the payment password you had before you reset it; nobody can open it any more"
        " (reset on {password_reset_time})."
    ),
    "CARD_NOT_FOUND": "The report has no such card: {card_id}.",
    "CARD_CASE_NOT_OPENED": "The bank could not open the case right now, try again later: bank {bank_code}.",
}


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


def from_rpc_error(error: grpc.RpcError) -> CardLookupError:
    """The client exception for a failed call (sync or grpc.aio)."""
    code = error.code()
    message = error.details() or ""
    info = error_info_of(error)
    if info is not None:
        cls = BY_REASON.get(info.reason, CardLookupError)
        return cls(code, info.reason, message, info.metadata)
    if code in _TRANSPORT:
        return HubUnavailable(code, "HUB_UNAVAILABLE", message, {})
    return CardLookupError(code, code.name, message, {})
