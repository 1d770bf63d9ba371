import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsentScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_SCOPE_UNSPECIFIED: _ClassVar[ConsentScope]
    CONSENT_SCOPE_LIST_MASKED_CARDS: _ClassVar[ConsentScope]
    CONSENT_SCOPE_OPEN_CARD_CASE: _ClassVar[ConsentScope]

class CardType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_TYPE_UNSPECIFIED: _ClassVar[CardType]
    CARD_TYPE_DEBIT: _ClassVar[CardType]
    CARD_TYPE_CREDIT: _ClassVar[CardType]

class UnlistedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNLISTED_REASON_UNSPECIFIED: _ClassVar[UnlistedReason]
    UNLISTED_REASON_NO_PHONE_ON_FILE: _ClassVar[UnlistedReason]
    UNLISTED_REASON_ID_DOCUMENT_EXPIRED: _ClassVar[UnlistedReason]
    UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED: _ClassVar[UnlistedReason]

class CardCaseKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_CASE_KIND_UNSPECIFIED: _ClassVar[CardCaseKind]
    CARD_CASE_KIND_NOT_RECOGNISED: _ClassVar[CardCaseKind]
    CARD_CASE_KIND_CLOSE_REQUESTED: _ClassVar[CardCaseKind]

class CardCaseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_CASE_STATUS_UNSPECIFIED: _ClassVar[CardCaseStatus]
    CARD_CASE_STATUS_RECEIVED: _ClassVar[CardCaseStatus]
    CARD_CASE_STATUS_CARD_SUSPENDED: _ClassVar[CardCaseStatus]
CONSENT_SCOPE_UNSPECIFIED: ConsentScope
CONSENT_SCOPE_LIST_MASKED_CARDS: ConsentScope
CONSENT_SCOPE_OPEN_CARD_CASE: ConsentScope
CARD_TYPE_UNSPECIFIED: CardType
CARD_TYPE_DEBIT: CardType
CARD_TYPE_CREDIT: CardType
UNLISTED_REASON_UNSPECIFIED: UnlistedReason
UNLISTED_REASON_NO_PHONE_ON_FILE: UnlistedReason
UNLISTED_REASON_ID_DOCUMENT_EXPIRED: UnlistedReason
UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED: UnlistedReason
CARD_CASE_KIND_UNSPECIFIED: CardCaseKind
CARD_CASE_KIND_NOT_RECOGNISED: CardCaseKind
CARD_CASE_KIND_CLOSE_REQUESTED: CardCaseKind
CARD_CASE_STATUS_UNSPECIFIED: CardCaseStatus
CARD_CASE_STATUS_RECEIVED: CardCaseStatus
CARD_CASE_STATUS_CARD_SUSPENDED: CardCaseStatus

class ListCardsRequest(_message.Message):
    __slots__ = ("query_id", "subject", "consent")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    subject: Subject
    consent: SignedConsent
    def __init__(self, query_id: _Optional[str] = ..., subject: _Optional[_Union[Subject, _Mapping]] = ..., consent: _Optional[_Union[SignedConsent, _Mapping]] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("full_name", "id_number")
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    full_name: str
    id_number: str
    def __init__(self, full_name: _Optional[str] = ..., id_number: _Optional[str] = ...) -> None: ...

class SignedConsent(_message.Message):
    __slots__ = ("consent", "signature", "key_id")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    consent: bytes
    signature: bytes
    key_id: str
    def __init__(self, consent: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("query_id", "bank_code", "subject_digest", "scope", "issue_time", "expire_time", "consent_text_version", "card_ref")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CARD_REF_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    bank_code: str
    subject_digest: bytes
    scope: ConsentScope
    issue_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    consent_text_version: str
    card_ref: str
    def __init__(self, query_id: _Optional[str] = ..., bank_code: _Optional[str] = ..., subject_digest: _Optional[bytes] = ..., scope: _Optional[_Union[ConsentScope, str]] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consent_text_version: _Optional[str] = ..., card_ref: _Optional[str] = ...) -> None: ...

class ListCardsResponse(_message.Message):
    __slots__ = ("card", "summary")
    CARD_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    card: MaskedCard
    summary: ListCardsSummary
    def __init__(self, card: _Optional[_Union[MaskedCard, _Mapping]] = ..., summary: _Optional[_Union[ListCardsSummary, _Mapping]] = ...) -> None: ...

class MaskedCard(_message.Message):
    __slots__ = ("card_type", "first_four", "last_four", "number_length", "card_ref")
    CARD_TYPE_FIELD_NUMBER: _ClassVar[int]
    FIRST_FOUR_FIELD_NUMBER: _ClassVar[int]
    LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    NUMBER_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CARD_REF_FIELD_NUMBER: _ClassVar[int]
    card_type: CardType
    first_four: str
    last_four: str
    number_length: int
    card_ref: str
    def __init__(self, card_type: _Optional[_Union[CardType, str]] = ..., first_four: _Optional[str] = ..., last_four: _Optional[str] = ..., number_length: _Optional[int] = ..., card_ref: _Optional[str] = ...) -> None: ...

class ListCardsSummary(_message.Message):
    __slots__ = ("listed_card_count", "debit_card_count", "credit_card_count", "unlisted")
    LISTED_CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNLISTED_FIELD_NUMBER: _ClassVar[int]
    listed_card_count: int
    debit_card_count: int
    credit_card_count: int
    unlisted: _containers.RepeatedCompositeFieldContainer[UnlistedCardCount]
    def __init__(self, listed_card_count: _Optional[int] = ..., debit_card_count: _Optional[int] = ..., credit_card_count: _Optional[int] = ..., unlisted: _Optional[_Iterable[_Union[UnlistedCardCount, _Mapping]]] = ...) -> None: ...

class UnlistedCardCount(_message.Message):
    __slots__ = ("reason", "card_count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: UnlistedReason
    card_count: int
    def __init__(self, reason: _Optional[_Union[UnlistedReason, str]] = ..., card_count: _Optional[int] = ...) -> None: ...

class OpenCardCaseRequest(_message.Message):
    __slots__ = ("query_id", "subject", "card_ref", "kind", "consent")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CARD_REF_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    subject: Subject
    card_ref: str
    kind: CardCaseKind
    consent: SignedConsent
    def __init__(self, query_id: _Optional[str] = ..., subject: _Optional[_Union[Subject, _Mapping]] = ..., card_ref: _Optional[str] = ..., kind: _Optional[_Union[CardCaseKind, str]] = ..., consent: _Optional[_Union[SignedConsent, _Mapping]] = ...) -> None: ...

class OpenCardCaseResponse(_message.Message):
    __slots__ = ("case_reference", "status", "next_step", "next_step_english")
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_ENGLISH_FIELD_NUMBER: _ClassVar[int]
    case_reference: str
    status: CardCaseStatus
    next_step: str
    next_step_english: str
    def __init__(self, case_reference: _Optional[str] = ..., status: _Optional[_Union[CardCaseStatus, str]] = ..., next_step: _Optional[str] = ..., next_step_english: _Optional[str] = ...) -> None: ...
