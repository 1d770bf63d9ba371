"""The one reason table of the hub API: each ErrorReason of the contract
(protos/cardlookup/hub/v1/error_reason.proto) with everything the code and
the docs say about it, in one place.

- `code`: the gRPC status code the hub refuses with (hub.api.errors);
- `category`: what the app can do about it: retry later (`RETRYABLE`), the
  user must act first (`USER_MUST_ACT`), or the hub's rules say no for now
  (`REFUSED`); the client's exception classes sit under these (client.errors);
- `metadata`: the ErrorInfo metadata keys the hub sends;
- `action`: what the app does (the table in docs/app-backend.md);
- `sentence`: the client's plain sentence for a person, with the metadata;
- `details`: the google.rpc detail sent besides the ErrorInfo, if any.

Adding a reason: add the enum value to error_reason.proto and one `Reason`
here; the hub's status map, the client's exception class (named after the
reason) and its sentence follow from it. tests/kernel/test_hub_reasons.py
checks this table against the proto (every value, its status code and the
metadata its comment names) and against the docs table (each row as
`doc_row` renders it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class Category(enum.StrEnum):
    """What the app can do about a refusal; the value is the client's base class name."""

    RETRYABLE = "Retryable"
    USER_MUST_ACT = "UserMustAct"
    REFUSED = "Refused"


RETRYABLE, USER_MUST_ACT, REFUSED = Category.RETRYABLE, Category.USER_MUST_ACT, Category.REFUSED

BAD_REQUEST = "BadRequest"
"""google.rpc.BadRequest: one field violation, the field of metadata "field"."""
RETRY_INFO = "RetryInfo"
"""google.rpc.RetryInfo: retry_delay = the time from the refusal to metadata "retry_time"."""


@dataclass(frozen=True)
class Reason:
    name: str
    """The ErrorReason value's name: ErrorInfo.reason."""
    code: grpc.StatusCode
    category: Category
    metadata: tuple[str, ...]
    action: str
    sentence: str
    """A str.format template over the metadata (client.errors.CardLookupError.sentence)."""
    metadata_note: str = ""
    """Said after the metadata keys in the docs table."""
    details: str | None = None
    """BAD_REQUEST, RETRY_INFO or None: the detail sent after the ErrorInfo."""

    @property
    def class_name(self) -> str:
        """The client's exception class: INVALID_FIELD -> InvalidField."""
        return "".join(word.capitalize() for word in self.name.split("_"))

    def doc_row(self) -> str:
        """This reason's row of the table in docs/app-backend.md."""
        facts = " ".join([f"`{key}`" for key in self.metadata] + ([self.metadata_note] if self.metadata_note else []))
        return (
            f"| `{self.name}` | {self.code.name} | {facts} | {self.action} | `{self.class_name}` ({self.category}) |"
        ).replace("|  |", "| |")


REASONS: tuple[Reason, ...] = (
    Reason(
        "INVALID_FIELD",
        INVALID_ARGUMENT,
        USER_MUST_ACT,
        ("field",),
        "fix the named field (a bug in the app, or bad user input)",
        "The request has a missing or malformed field: {field}.",
        details=BAD_REQUEST,
    ),
    Reason(
        "USER_NOT_FOUND",
        NOT_FOUND,
        USER_MUST_ACT,
        (),
        "call EnrollUser first",
        "This user is not enrolled with the card-lookup service.",
    ),
    Reason(
        "REGION_NOT_OPEN",
        FAILED_PRECONDITION,
        REFUSED,
        ("region_code",),
        "tell the user the service is not open in their region yet",
        "The card-lookup service is not open yet in the user's region ({region_code}).",
    ),
    Reason(
        "ID_DOCUMENT_EXPIRED",
        FAILED_PRECONDITION,
        USER_MUST_ACT,
        ("id_expiry_date",),
        "ask the user to update their identity document, then EnrollUser",
        "The user's identity document has expired ({id_expiry_date}); update it first.",
    ),
    Reason(
        "BANK_NOT_AVAILABLE",
        INVALID_ARGUMENT,
        USER_MUST_ACT,
        ("bank_code",),
        "refresh the list with ListBanks",
        "A chosen bank is not available for lookups ({bank_code}).",
    ),
    Reason(
        "SMS_RATE_LIMITED",
        RESOURCE_EXHAUSTED,
        RETRYABLE,
        ("retry_time",),
        'disable "resend" until `retry_time` (metadata `limit` says which: the `resend` interval'
        " or the `daily` cap per phone)",
        "An SMS code was sent moments ago; another can be requested after {retry_time}.",
        details=RETRY_INFO,
    ),
    Reason(
        "VERIFICATION_NOT_FOUND",
        NOT_FOUND,
        USER_MUST_ACT,
        (),
        "start a new verification",
        "That verification is unknown; request a new SMS code.",
    ),
    Reason(
        "VERIFICATION_EXPIRED",
        FAILED_PRECONDITION,
        USER_MUST_ACT,
        (),
        "start a new verification",
        "The SMS code has expired; request a new one.",
    ),
    Reason(
        "VERIFICATION_USED",
        FAILED_PRECONDITION,
        USER_MUST_ACT,
        (),
        "start a new verification (one code, one query)",
        "That SMS code was already used for a query; request a new one.",
    ),
    Reason(
        "SMS_CODE_WRONG",
        INVALID_ARGUMENT,
        USER_MUST_ACT,
        ("attempts_left",),
        "let the user retype the code",
        "The SMS code is wrong; {attempts_left} left.",
    ),
    Reason(
        "VERIFICATION_LOCKED",
        FAILED_PRECONDITION,
        USER_MUST_ACT,
        (),
        "start a new verification",
        "Too many wrong SMS codes; request a new one.",
    ),
    Reason(
        "FACE_ATTESTATION_INVALID",
        PERMISSION_DENIED,
        USER_MUST_ACT,
        ("problem",),
        "redo the face check for this verification",
        "Face verification did not pass: the attestation is {problem}.",
    ),
    Reason(
        "CONSENT_VERSION_MISMATCH",
        FAILED_PRECONDITION,
        USER_MUST_ACT,
        ("current_version",),
        "show the current notice (ListBanks) and ask again",
        "The authorization notice changed; show version {current_version} and ask again.",
    ),
    Reason(
        "COOLDOWN_ACTIVE",
        FAILED_PRECONDITION,
        REFUSED,
        ("retry_time",),
        "tell the user when they may look up again",
        "A new lookup is allowed 7 days after the latest report, from {retry_time}.",
        details=RETRY_INFO,
    ),
    Reason(
        "QUERY_NOT_FOUND",
        NOT_FOUND,
        REFUSED,
        (),
        "the query is not this user's, or does not exist",
        "There is no such query for this user.",
    ),
    Reason(
        "REPORT_NOT_READY",
        FAILED_PRECONDITION,
        RETRYABLE,
        ("state",),
        "wait for the SMS / WatchQuery",
        "The report is not ready yet (the query is {state}); an SMS will tell you when it is.",
    ),
    Reason(
        "REPORT_EXPIRED",
        FAILED_PRECONDITION,
        REFUSED,
        ("expire_time",),
        "the report is deleted (R11); a new lookup is possible after the cooldown",
        "The report was deleted 7 days after it was generated, on {expire_time}.",
    ),
    Reason(
        "PAYMENT_PASSWORD_WRONG",
        PERMISSION_DENIED,
        USER_MUST_ACT,
        ("attempts_left",),
        "let the user retry",
        "The payment password is wrong; {attempts_left} left before it locks.",
    ),
    Reason(
        "PASSWORD_LOCKED",
        PERMISSION_DENIED,
        REFUSED,
        ("unlock_time",),
        "tell the user when they can try again",
        "The payment password is locked after repeated failures, until {unlock_time}.",
    ),
    Reason(
        "CALLER_NOT_ALLOWED",
        PERMISSION_DENIED,
        REFUSED,
        (),
        "wrong client certificate: a deployment error",
        "This client is not allowed to call the hub: only the app backend may.",
    ),
    Reason(
        "REQUEST_ID_REUSED",
        ALREADY_EXISTS,
        USER_MUST_ACT,
        (),
        "a new CreateQuery needs a new request id",
        "That request id was already used for a different query.",
    ),
    Reason(
        "HUB_UNAVAILABLE",
        UNAVAILABLE,
        RETRYABLE,
        (),
        "retry later (the client retries safe calls itself; also when the hub's 30 s budget for one call ran out)",
        "The hub cannot be reached right now; try again later.",
    ),
    Reason(
        "QUERY_IN_PROGRESS",
        FAILED_PRECONDITION,
        REFUSED,
        ("query_id",),
        "show the running query instead",
        "Another lookup is still running ({query_id}); wait for its report.",
        metadata_note="(own account)",
    ),
    Reason(
        "REPORT_SEALED_TO_OLD_PASSWORD",
        FAILED_PRECONDITION,
        REFUSED,
        ("password_reset_time",),
        "tell the user the report was sealed to the password they reset and cannot be opened; a new lookup"
        " is possible after the cooldown",
        "The report was sealed to the payment password you had before you reset it; nobody can open it any"
        " more (reset on {password_reset_time}).",
    ),
    Reason(
        "CARD_NOT_FOUND",
        NOT_FOUND,
        USER_MUST_ACT,
        ("card_id",),
        "the report has no such card: take `card_id` from the report",
        "The report has no such card: {card_id}.",
    ),
    Reason(
        "CARD_CASE_NOT_OPENED",
        UNAVAILABLE,
        RETRYABLE,
        ("bank_code",),
        "the bank could not open the case now; let the user retry later",
        "The bank could not open the case right now, try again later: bank {bank_code}.",
    ),
    Reason(
        "MALFORMED_REQUEST",
        INVALID_ARGUMENT,
        USER_MUST_ACT,
        (),
        "the request bytes are not a valid message of the method: a client bug",
        "The hub could not decode the request; the app must be fixed.",
    ),
    Reason(
        "MESSAGE_TOO_LARGE",
        RESOURCE_EXHAUSTED,
        USER_MUST_ACT,
        ("limit",),
        "the request exceeds 1 MiB: a client bug",
        "The request is too large for the hub; the limit is {limit} bytes.",
    ),
    Reason(
        "RESPONSE_TOO_LARGE",
        RESOURCE_EXHAUSTED,
        USER_MUST_ACT,
        ("limit",),
        "ask for a smaller page",
        "The answer would be too large; ask for a smaller page (the limit is {limit} bytes).",
    ),
    Reason(
        "WATCH_LIMIT_REACHED",
        RESOURCE_EXHAUSTED,
        RETRYABLE,
        ("limit",),
        "close streams you no longer read, or poll GetQuery",
        "Too many live query views are open at once; close one and try again (at most {limit}).",
    ),
    Reason(
        "KEY_NOT_CONFIGURED",
        FAILED_PRECONDITION,
        REFUSED,
        (),
        "the hub cannot open data sealed under a key its operator no longer lists; do not retry, report it to the"
        " hub's operator (the hub logs `KEK_UNKNOWN:<key id>`)",
        "The service cannot open this account's data right now; its operator must fix a key.",
    ),
)
"""Every ErrorReason but ERROR_REASON_UNSPECIFIED, in the proto's order."""

BY_NAME: dict[str, Reason] = {reason.name: reason for reason in REASONS}
