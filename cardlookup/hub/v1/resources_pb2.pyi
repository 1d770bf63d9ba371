import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    CARD_CASE_STATUS_VISIT_BANK: _ClassVar[CardCaseStatus]

class QueryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_STATE_UNSPECIFIED: _ClassVar[QueryState]
    QUERY_STATE_ACCEPTED: _ClassVar[QueryState]
    QUERY_STATE_RUNNING: _ClassVar[QueryState]
    QUERY_STATE_READY: _ClassVar[QueryState]
    QUERY_STATE_EXPIRED: _ClassVar[QueryState]

class BankOutcomeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BANK_OUTCOME_STATE_UNSPECIFIED: _ClassVar[BankOutcomeState]
    BANK_OUTCOME_STATE_PENDING: _ClassVar[BankOutcomeState]
    BANK_OUTCOME_STATE_ANSWERED: _ClassVar[BankOutcomeState]
    BANK_OUTCOME_STATE_NOT_ANSWERED: _ClassVar[BankOutcomeState]
    BANK_OUTCOME_STATE_REJECTED: _ClassVar[BankOutcomeState]

class ReportAccessResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_ACCESS_RESULT_UNSPECIFIED: _ClassVar[ReportAccessResult]
    REPORT_ACCESS_RESULT_VIEWED: _ClassVar[ReportAccessResult]
    REPORT_ACCESS_RESULT_WRONG_PASSWORD: _ClassVar[ReportAccessResult]
    REPORT_ACCESS_RESULT_LOCKED: _ClassVar[ReportAccessResult]

class UnlistedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNLISTED_REASON_UNSPECIFIED: _ClassVar[UnlistedReason]
    UNLISTED_REASON_NO_PHONE_ON_FILE: _ClassVar[UnlistedReason]
    UNLISTED_REASON_ID_DOCUMENT_EXPIRED: _ClassVar[UnlistedReason]
    UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED: _ClassVar[UnlistedReason]

class CardType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_TYPE_UNSPECIFIED: _ClassVar[CardType]
    CARD_TYPE_DEBIT: _ClassVar[CardType]
    CARD_TYPE_CREDIT: _ClassVar[CardType]

class NoticeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTICE_KIND_UNSPECIFIED: _ClassVar[NoticeKind]
    NOTICE_KIND_UNLISTED_CARDS: _ClassVar[NoticeKind]
    NOTICE_KIND_SAFETY: _ClassVar[NoticeKind]
    NOTICE_KIND_UNRECOGNISED_CARDS: _ClassVar[NoticeKind]
    NOTICE_KIND_CREDIT_REPORT: _ClassVar[NoticeKind]
CARD_CASE_KIND_UNSPECIFIED: CardCaseKind
CARD_CASE_KIND_NOT_RECOGNISED: CardCaseKind
CARD_CASE_KIND_CLOSE_REQUESTED: CardCaseKind
CARD_CASE_STATUS_UNSPECIFIED: CardCaseStatus
CARD_CASE_STATUS_RECEIVED: CardCaseStatus
CARD_CASE_STATUS_CARD_SUSPENDED: CardCaseStatus
CARD_CASE_STATUS_VISIT_BANK: CardCaseStatus
QUERY_STATE_UNSPECIFIED: QueryState
QUERY_STATE_ACCEPTED: QueryState
QUERY_STATE_RUNNING: QueryState
QUERY_STATE_READY: QueryState
QUERY_STATE_EXPIRED: QueryState
BANK_OUTCOME_STATE_UNSPECIFIED: BankOutcomeState
BANK_OUTCOME_STATE_PENDING: BankOutcomeState
BANK_OUTCOME_STATE_ANSWERED: BankOutcomeState
BANK_OUTCOME_STATE_NOT_ANSWERED: BankOutcomeState
BANK_OUTCOME_STATE_REJECTED: BankOutcomeState
REPORT_ACCESS_RESULT_UNSPECIFIED: ReportAccessResult
REPORT_ACCESS_RESULT_VIEWED: ReportAccessResult
REPORT_ACCESS_RESULT_WRONG_PASSWORD: ReportAccessResult
REPORT_ACCESS_RESULT_LOCKED: ReportAccessResult
UNLISTED_REASON_UNSPECIFIED: UnlistedReason
UNLISTED_REASON_NO_PHONE_ON_FILE: UnlistedReason
UNLISTED_REASON_ID_DOCUMENT_EXPIRED: UnlistedReason
UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED: UnlistedReason
CARD_TYPE_UNSPECIFIED: CardType
CARD_TYPE_DEBIT: CardType
CARD_TYPE_CREDIT: CardType
NOTICE_KIND_UNSPECIFIED: NoticeKind
NOTICE_KIND_UNLISTED_CARDS: NoticeKind
NOTICE_KIND_SAFETY: NoticeKind
NOTICE_KIND_UNRECOGNISED_CARDS: NoticeKind
NOTICE_KIND_CREDIT_REPORT: NoticeKind

class User(_message.Message):
    __slots__ = ("name", "user_id", "region_code", "masked_phone", "id_expiry_date", "eligible", "ineligible_reason", "create_time", "update_time", "eligible_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    MASKED_PHONE_FIELD_NUMBER: _ClassVar[int]
    ID_EXPIRY_DATE_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    INELIGIBLE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    user_id: str
    region_code: str
    masked_phone: str
    id_expiry_date: str
    eligible: bool
    ineligible_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    eligible_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., user_id: _Optional[str] = ..., region_code: _Optional[str] = ..., masked_phone: _Optional[str] = ..., id_expiry_date: _Optional[str] = ..., eligible: _Optional[bool] = ..., ineligible_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., eligible_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Bank(_message.Message):
    __slots__ = ("bank_code", "display_name", "english_name")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ENGLISH_NAME_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    display_name: str
    english_name: str
    def __init__(self, bank_code: _Optional[str] = ..., display_name: _Optional[str] = ..., english_name: _Optional[str] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("name", "query_id", "state", "bank_codes", "bank_outcomes", "create_time", "report_due_time", "ready_time", "report_expire_time", "consent_text_version", "acceptance_notice", "report_access_events", "card_cases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BANK_CODES_FIELD_NUMBER: _ClassVar[int]
    BANK_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REPORT_DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    READY_TIME_FIELD_NUMBER: _ClassVar[int]
    REPORT_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_NOTICE_FIELD_NUMBER: _ClassVar[int]
    REPORT_ACCESS_EVENTS_FIELD_NUMBER: _ClassVar[int]
    CARD_CASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    query_id: str
    state: QueryState
    bank_codes: _containers.RepeatedScalarFieldContainer[str]
    bank_outcomes: _containers.RepeatedCompositeFieldContainer[BankOutcome]
    create_time: _timestamp_pb2.Timestamp
    report_due_time: _timestamp_pb2.Timestamp
    ready_time: _timestamp_pb2.Timestamp
    report_expire_time: _timestamp_pb2.Timestamp
    consent_text_version: str
    acceptance_notice: str
    report_access_events: _containers.RepeatedCompositeFieldContainer[ReportAccessEvent]
    card_cases: _containers.RepeatedCompositeFieldContainer[CardCase]
    def __init__(self, name: _Optional[str] = ..., query_id: _Optional[str] = ..., state: _Optional[_Union[QueryState, str]] = ..., bank_codes: _Optional[_Iterable[str]] = ..., bank_outcomes: _Optional[_Iterable[_Union[BankOutcome, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., report_due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ready_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., report_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consent_text_version: _Optional[str] = ..., acceptance_notice: _Optional[str] = ..., report_access_events: _Optional[_Iterable[_Union[ReportAccessEvent, _Mapping]]] = ..., card_cases: _Optional[_Iterable[_Union[CardCase, _Mapping]]] = ...) -> None: ...

class CardCase(_message.Message):
    __slots__ = ("card_id", "bank_code", "display_name", "kind", "status", "case_reference", "next_step", "next_step_english", "open_time", "masked_card")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_ENGLISH_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    MASKED_CARD_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    bank_code: str
    display_name: str
    kind: CardCaseKind
    status: CardCaseStatus
    case_reference: str
    next_step: str
    next_step_english: str
    open_time: _timestamp_pb2.Timestamp
    masked_card: str
    def __init__(self, card_id: _Optional[str] = ..., bank_code: _Optional[str] = ..., display_name: _Optional[str] = ..., kind: _Optional[_Union[CardCaseKind, str]] = ..., status: _Optional[_Union[CardCaseStatus, str]] = ..., case_reference: _Optional[str] = ..., next_step: _Optional[str] = ..., next_step_english: _Optional[str] = ..., open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., masked_card: _Optional[str] = ...) -> None: ...

class BankOutcome(_message.Message):
    __slots__ = ("bank_code", "display_name", "state", "reason", "attempt_count", "card_count", "finish_time")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    display_name: str
    state: BankOutcomeState
    reason: str
    attempt_count: int
    card_count: int
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, bank_code: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[BankOutcomeState, str]] = ..., reason: _Optional[str] = ..., attempt_count: _Optional[int] = ..., card_count: _Optional[int] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportAccessEvent(_message.Message):
    __slots__ = ("time", "result")
    TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    result: ReportAccessResult
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[ReportAccessResult, str]] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("name", "generate_time", "expire_time", "bank_summaries", "cards", "notices", "new_cards_marked")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    BANK_SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    CARDS_FIELD_NUMBER: _ClassVar[int]
    NOTICES_FIELD_NUMBER: _ClassVar[int]
    NEW_CARDS_MARKED_FIELD_NUMBER: _ClassVar[int]
    name: str
    generate_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    bank_summaries: _containers.RepeatedCompositeFieldContainer[BankSummary]
    cards: _containers.RepeatedCompositeFieldContainer[ReportCard]
    notices: _containers.RepeatedCompositeFieldContainer[Notice]
    new_cards_marked: bool
    def __init__(self, name: _Optional[str] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bank_summaries: _Optional[_Iterable[_Union[BankSummary, _Mapping]]] = ..., cards: _Optional[_Iterable[_Union[ReportCard, _Mapping]]] = ..., notices: _Optional[_Iterable[_Union[Notice, _Mapping]]] = ..., new_cards_marked: _Optional[bool] = ...) -> None: ...

class BankSummary(_message.Message):
    __slots__ = ("bank_code", "display_name", "state", "reason", "debit_card_count", "credit_card_count", "unlisted_card_count", "unlisted")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEBIT_CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNLISTED_CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNLISTED_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    display_name: str
    state: BankOutcomeState
    reason: str
    debit_card_count: int
    credit_card_count: int
    unlisted_card_count: int
    unlisted: _containers.RepeatedCompositeFieldContainer[UnlistedCount]
    def __init__(self, bank_code: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[BankOutcomeState, str]] = ..., reason: _Optional[str] = ..., debit_card_count: _Optional[int] = ..., credit_card_count: _Optional[int] = ..., unlisted_card_count: _Optional[int] = ..., unlisted: _Optional[_Iterable[_Union[UnlistedCount, _Mapping]]] = ...) -> None: ...

class UnlistedCount(_message.Message):
    __slots__ = ("reason", "card_count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: UnlistedReason
    card_count: int
    def __init__(self, reason: _Optional[_Union[UnlistedReason, str]] = ..., card_count: _Optional[int] = ...) -> None: ...

class ReportCard(_message.Message):
    __slots__ = ("bank_code", "display_name", "card_type", "first_four", "last_four", "number_length", "card_id", "new_since_last_lookup")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CARD_TYPE_FIELD_NUMBER: _ClassVar[int]
    FIRST_FOUR_FIELD_NUMBER: _ClassVar[int]
    LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    NUMBER_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_SINCE_LAST_LOOKUP_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    display_name: str
    card_type: CardType
    first_four: str
    last_four: str
    number_length: int
    card_id: str
    new_since_last_lookup: bool
    def __init__(self, bank_code: _Optional[str] = ..., display_name: _Optional[str] = ..., card_type: _Optional[_Union[CardType, str]] = ..., first_four: _Optional[str] = ..., last_four: _Optional[str] = ..., number_length: _Optional[int] = ..., card_id: _Optional[str] = ..., new_since_last_lookup: _Optional[bool] = ...) -> None: ...

class Notice(_message.Message):
    __slots__ = ("kind", "text", "english_text")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ENGLISH_TEXT_FIELD_NUMBER: _ClassVar[int]
    kind: NoticeKind
    text: str
    english_text: str
    def __init__(self, kind: _Optional[_Union[NoticeKind, str]] = ..., text: _Optional[str] = ..., english_text: _Optional[str] = ...) -> None: ...
