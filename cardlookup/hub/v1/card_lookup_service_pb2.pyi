import datetime

from cardlookup.hub.v1 import face_attestation_pb2 as _face_attestation_pb2
from cardlookup.hub.v1 import resources_pb2 as _resources_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_VIEW_UNSPECIFIED: _ClassVar[WatchView]
    WATCH_VIEW_FULL: _ClassVar[WatchView]
    WATCH_VIEW_CHANGES: _ClassVar[WatchView]
WATCH_VIEW_UNSPECIFIED: WatchView
WATCH_VIEW_FULL: WatchView
WATCH_VIEW_CHANGES: WatchView

class EnrollUserRequest(_message.Message):
    __slots__ = ("user_id", "full_name", "id_number", "id_expiry_date", "region_code", "phone_number", "payment_password", "report_public_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ID_EXPIRY_DATE_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    REPORT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    full_name: str
    id_number: str
    id_expiry_date: str
    region_code: str
    phone_number: str
    payment_password: str
    report_public_key: bytes
    def __init__(self, user_id: _Optional[str] = ..., full_name: _Optional[str] = ..., id_number: _Optional[str] = ..., id_expiry_date: _Optional[str] = ..., region_code: _Optional[str] = ..., phone_number: _Optional[str] = ..., payment_password: _Optional[str] = ..., report_public_key: _Optional[bytes] = ...) -> None: ...

class EnrollUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: _resources_pb2.User
    def __init__(self, user: _Optional[_Union[_resources_pb2.User, _Mapping]] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: _resources_pb2.User
    def __init__(self, user: _Optional[_Union[_resources_pb2.User, _Mapping]] = ...) -> None: ...

class ListBanksRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListBanksResponse(_message.Message):
    __slots__ = ("banks", "consent_text_version", "consent_text")
    BANKS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TEXT_FIELD_NUMBER: _ClassVar[int]
    banks: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Bank]
    consent_text_version: str
    consent_text: str
    def __init__(self, banks: _Optional[_Iterable[_Union[_resources_pb2.Bank, _Mapping]]] = ..., consent_text_version: _Optional[str] = ..., consent_text: _Optional[str] = ...) -> None: ...

class StartVerificationRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class StartVerificationResponse(_message.Message):
    __slots__ = ("verification_id", "masked_phone", "expire_time", "resend_time")
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    MASKED_PHONE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESEND_TIME_FIELD_NUMBER: _ClassVar[int]
    verification_id: str
    masked_phone: str
    expire_time: _timestamp_pb2.Timestamp
    resend_time: _timestamp_pb2.Timestamp
    def __init__(self, verification_id: _Optional[str] = ..., masked_phone: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resend_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateQueryRequest(_message.Message):
    __slots__ = ("user_id", "request_id", "verification_id", "sms_code", "face_attestation", "consent_text_version", "bank_codes", "track_new_cards")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    SMS_CODE_FIELD_NUMBER: _ClassVar[int]
    FACE_ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    BANK_CODES_FIELD_NUMBER: _ClassVar[int]
    TRACK_NEW_CARDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    request_id: str
    verification_id: str
    sms_code: str
    face_attestation: _face_attestation_pb2.FaceAttestation
    consent_text_version: str
    bank_codes: _containers.RepeatedScalarFieldContainer[str]
    track_new_cards: bool
    def __init__(self, user_id: _Optional[str] = ..., request_id: _Optional[str] = ..., verification_id: _Optional[str] = ..., sms_code: _Optional[str] = ..., face_attestation: _Optional[_Union[_face_attestation_pb2.FaceAttestation, _Mapping]] = ..., consent_text_version: _Optional[str] = ..., bank_codes: _Optional[_Iterable[str]] = ..., track_new_cards: _Optional[bool] = ...) -> None: ...

class CreateQueryResponse(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: _resources_pb2.Query
    def __init__(self, query: _Optional[_Union[_resources_pb2.Query, _Mapping]] = ...) -> None: ...

class GetQueryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetQueryResponse(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: _resources_pb2.Query
    def __init__(self, query: _Optional[_Union[_resources_pb2.Query, _Mapping]] = ...) -> None: ...

class WatchQueryRequest(_message.Message):
    __slots__ = ("name", "view")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    name: str
    view: WatchView
    def __init__(self, name: _Optional[str] = ..., view: _Optional[_Union[WatchView, str]] = ...) -> None: ...

class WatchQueryResponse(_message.Message):
    __slots__ = ("query", "changed_bank_code")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    query: _resources_pb2.Query
    changed_bank_code: str
    def __init__(self, query: _Optional[_Union[_resources_pb2.Query, _Mapping]] = ..., changed_bank_code: _Optional[str] = ...) -> None: ...

class ListQueriesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListQueriesResponse(_message.Message):
    __slots__ = ("queries", "next_page_token")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Query]
    next_page_token: str
    def __init__(self, queries: _Optional[_Iterable[_Union[_resources_pb2.Query, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("name", "payment_password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    payment_password: str
    def __init__(self, name: _Optional[str] = ..., payment_password: _Optional[str] = ...) -> None: ...

class GetReportResponse(_message.Message):
    __slots__ = ("report", "sealed_report", "sealed_previous_cards")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    SEALED_REPORT_FIELD_NUMBER: _ClassVar[int]
    SEALED_PREVIOUS_CARDS_FIELD_NUMBER: _ClassVar[int]
    report: _resources_pb2.Report
    sealed_report: bytes
    sealed_previous_cards: bytes
    def __init__(self, report: _Optional[_Union[_resources_pb2.Report, _Mapping]] = ..., sealed_report: _Optional[bytes] = ..., sealed_previous_cards: _Optional[bytes] = ...) -> None: ...

class ReplaceReportKeyRequest(_message.Message):
    __slots__ = ("user_id", "payment_password", "report_public_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    REPORT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    payment_password: str
    report_public_key: bytes
    def __init__(self, user_id: _Optional[str] = ..., payment_password: _Optional[str] = ..., report_public_key: _Optional[bytes] = ...) -> None: ...

class ReplaceReportKeyResponse(_message.Message):
    __slots__ = ("report_key_epoch",)
    REPORT_KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    report_key_epoch: int
    def __init__(self, report_key_epoch: _Optional[int] = ...) -> None: ...

class ChangePaymentPasswordRequest(_message.Message):
    __slots__ = ("user_id", "old_payment_password", "new_payment_password")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_PAYMENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PAYMENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    old_payment_password: str
    new_payment_password: str
    def __init__(self, user_id: _Optional[str] = ..., old_payment_password: _Optional[str] = ..., new_payment_password: _Optional[str] = ...) -> None: ...

class ChangePaymentPasswordResponse(_message.Message):
    __slots__ = ("user", "resealed_report_count")
    USER_FIELD_NUMBER: _ClassVar[int]
    RESEALED_REPORT_COUNT_FIELD_NUMBER: _ClassVar[int]
    user: _resources_pb2.User
    resealed_report_count: int
    def __init__(self, user: _Optional[_Union[_resources_pb2.User, _Mapping]] = ..., resealed_report_count: _Optional[int] = ...) -> None: ...

class FlagCardRequest(_message.Message):
    __slots__ = ("name", "payment_password", "card_id", "kind", "device_card")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CARD_FIELD_NUMBER: _ClassVar[int]
    name: str
    payment_password: str
    card_id: str
    kind: _resources_pb2.CardCaseKind
    device_card: DeviceSealedCard
    def __init__(self, name: _Optional[str] = ..., payment_password: _Optional[str] = ..., card_id: _Optional[str] = ..., kind: _Optional[_Union[_resources_pb2.CardCaseKind, str]] = ..., device_card: _Optional[_Union[DeviceSealedCard, _Mapping]] = ...) -> None: ...

class DeviceSealedCard(_message.Message):
    __slots__ = ("bank_code", "card_ref", "first_four", "last_four")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    CARD_REF_FIELD_NUMBER: _ClassVar[int]
    FIRST_FOUR_FIELD_NUMBER: _ClassVar[int]
    LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    card_ref: str
    first_four: str
    last_four: str
    def __init__(self, bank_code: _Optional[str] = ..., card_ref: _Optional[str] = ..., first_four: _Optional[str] = ..., last_four: _Optional[str] = ...) -> None: ...

class FlagCardResponse(_message.Message):
    __slots__ = ("card_case",)
    CARD_CASE_FIELD_NUMBER: _ClassVar[int]
    card_case: _resources_pb2.CardCase
    def __init__(self, card_case: _Optional[_Union[_resources_pb2.CardCase, _Mapping]] = ...) -> None: ...

class DeleteUserRequest(_message.Message):
    __slots__ = ("user_id", "payment_password")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    payment_password: str
    def __init__(self, user_id: _Optional[str] = ..., payment_password: _Optional[str] = ...) -> None: ...

class DeleteUserResponse(_message.Message):
    __slots__ = ("erased_query_count", "ended_query_count")
    ERASED_QUERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ENDED_QUERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    erased_query_count: int
    ended_query_count: int
    def __init__(self, erased_query_count: _Optional[int] = ..., ended_query_count: _Optional[int] = ...) -> None: ...
