"""ErrorReason -> gRPC status code, as the hub contract documents them."""

from __future__ import annotations

import grpc

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
}


def status_of(reason: str) -> grpc.StatusCode:
    return STATUS_OF_REASON.get(reason, grpc.StatusCode.FAILED_PRECONDITION)
