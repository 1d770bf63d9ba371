from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    INVALID_FIELD: _ClassVar[ErrorReason]
    USER_NOT_FOUND: _ClassVar[ErrorReason]
    REGION_NOT_OPEN: _ClassVar[ErrorReason]
    ID_DOCUMENT_EXPIRED: _ClassVar[ErrorReason]
    BANK_NOT_AVAILABLE: _ClassVar[ErrorReason]
    SMS_RATE_LIMITED: _ClassVar[ErrorReason]
    VERIFICATION_NOT_FOUND: _ClassVar[ErrorReason]
    VERIFICATION_EXPIRED: _ClassVar[ErrorReason]
    VERIFICATION_USED: _ClassVar[ErrorReason]
    SMS_CODE_WRONG: _ClassVar[ErrorReason]
    VERIFICATION_LOCKED: _ClassVar[ErrorReason]
    FACE_ATTESTATION_INVALID: _ClassVar[ErrorReason]
    CONSENT_VERSION_MISMATCH: _ClassVar[ErrorReason]
    COOLDOWN_ACTIVE: _ClassVar[ErrorReason]
    QUERY_NOT_FOUND: _ClassVar[ErrorReason]
    REPORT_NOT_READY: _ClassVar[ErrorReason]
    REPORT_EXPIRED: _ClassVar[ErrorReason]
    PAYMENT_PASSWORD_WRONG: _ClassVar[ErrorReason]
    PASSWORD_LOCKED: _ClassVar[ErrorReason]
    CALLER_NOT_ALLOWED: _ClassVar[ErrorReason]
    REQUEST_ID_REUSED: _ClassVar[ErrorReason]
    HUB_UNAVAILABLE: _ClassVar[ErrorReason]
    QUERY_IN_PROGRESS: _ClassVar[ErrorReason]
    REPORT_SEALED_TO_OLD_PASSWORD: _ClassVar[ErrorReason]
    CARD_NOT_FOUND: _ClassVar[ErrorReason]
    CARD_CASE_NOT_OPENED: _ClassVar[ErrorReason]
    MALFORMED_REQUEST: _ClassVar[ErrorReason]
    MESSAGE_TOO_LARGE: _ClassVar[ErrorReason]
    RESPONSE_TOO_LARGE: _ClassVar[ErrorReason]
    WATCH_LIMIT_REACHED: _ClassVar[ErrorReason]
    KEY_NOT_CONFIGURED: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
INVALID_FIELD: ErrorReason
USER_NOT_FOUND: ErrorReason
REGION_NOT_OPEN: ErrorReason
ID_DOCUMENT_EXPIRED: ErrorReason
BANK_NOT_AVAILABLE: ErrorReason
SMS_RATE_LIMITED: ErrorReason
VERIFICATION_NOT_FOUND: ErrorReason
VERIFICATION_EXPIRED: ErrorReason
VERIFICATION_USED: ErrorReason
SMS_CODE_WRONG: ErrorReason
VERIFICATION_LOCKED: ErrorReason
FACE_ATTESTATION_INVALID: ErrorReason
CONSENT_VERSION_MISMATCH: ErrorReason
COOLDOWN_ACTIVE: ErrorReason
QUERY_NOT_FOUND: ErrorReason
REPORT_NOT_READY: ErrorReason
REPORT_EXPIRED: ErrorReason
PAYMENT_PASSWORD_WRONG: ErrorReason
PASSWORD_LOCKED: ErrorReason
CALLER_NOT_ALLOWED: ErrorReason
REQUEST_ID_REUSED: ErrorReason
HUB_UNAVAILABLE: ErrorReason
QUERY_IN_PROGRESS: ErrorReason
REPORT_SEALED_TO_OLD_PASSWORD: ErrorReason
CARD_NOT_FOUND: ErrorReason
CARD_CASE_NOT_OPENED: ErrorReason
MALFORMED_REQUEST: ErrorReason
MESSAGE_TOO_LARGE: ErrorReason
RESPONSE_TOO_LARGE: ErrorReason
WATCH_LIMIT_REACHED: ErrorReason
KEY_NOT_CONFIGURED: ErrorReason
