import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IssuedCardType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ISSUED_CARD_TYPE_UNSPECIFIED: _ClassVar[IssuedCardType]
    ISSUED_CARD_TYPE_DEBIT: _ClassVar[IssuedCardType]
    ISSUED_CARD_TYPE_CREDIT: _ClassVar[IssuedCardType]

class Misbehaviour(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISBEHAVIOUR_UNSPECIFIED: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_FULL_CARD_NUMBER: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_WRONG_DIGITS: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_UNKNOWN_CARD_TYPE: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_SUMMARY_MISMATCH: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_OVERSIZED_MESSAGE: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_CARD_REF_FROM_NUMBER: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_TOO_MANY_CARDS: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_WRONG_REASON_PRECEDENCE: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_TRAILING_NEWLINE_ACCEPTED: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_CALLER_BY_COMMON_NAME: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_FIRST_GUIDE: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_SESSION_WRONG_QUERY_ID: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_SESSION_MESSAGE_AFTER_SUMMARY: _ClassVar[Misbehaviour]
    MISBEHAVIOUR_SESSION_STALL_BLOCKS_OTHERS: _ClassVar[Misbehaviour]
ISSUED_CARD_TYPE_UNSPECIFIED: IssuedCardType
ISSUED_CARD_TYPE_DEBIT: IssuedCardType
ISSUED_CARD_TYPE_CREDIT: IssuedCardType
MISBEHAVIOUR_UNSPECIFIED: Misbehaviour
MISBEHAVIOUR_FULL_CARD_NUMBER: Misbehaviour
MISBEHAVIOUR_WRONG_DIGITS: Misbehaviour
MISBEHAVIOUR_UNKNOWN_CARD_TYPE: Misbehaviour
MISBEHAVIOUR_SUMMARY_MISMATCH: Misbehaviour
MISBEHAVIOUR_OVERSIZED_MESSAGE: Misbehaviour
MISBEHAVIOUR_CARD_REF_FROM_NUMBER: Misbehaviour
MISBEHAVIOUR_TOO_MANY_CARDS: Misbehaviour
MISBEHAVIOUR_WRONG_REASON_PRECEDENCE: Misbehaviour
MISBEHAVIOUR_TRAILING_NEWLINE_ACCEPTED: Misbehaviour
MISBEHAVIOUR_CALLER_BY_COMMON_NAME: Misbehaviour
MISBEHAVIOUR_FIRST_GUIDE: Misbehaviour
MISBEHAVIOUR_SESSION_WRONG_QUERY_ID: Misbehaviour
MISBEHAVIOUR_SESSION_MESSAGE_AFTER_SUMMARY: Misbehaviour
MISBEHAVIOUR_SESSION_STALL_BLOCKS_OTHERS: Misbehaviour

class IssueCardRequest(_message.Message):
    __slots__ = ("bank_code", "id_number", "card_type")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CARD_TYPE_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    id_number: str
    card_type: IssuedCardType
    def __init__(self, bank_code: _Optional[str] = ..., id_number: _Optional[str] = ..., card_type: _Optional[_Union[IssuedCardType, str]] = ...) -> None: ...

class IssueCardResponse(_message.Message):
    __slots__ = ("first_four", "last_four", "number_length", "card_ref")
    FIRST_FOUR_FIELD_NUMBER: _ClassVar[int]
    LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    NUMBER_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CARD_REF_FIELD_NUMBER: _ClassVar[int]
    first_four: str
    last_four: str
    number_length: int
    card_ref: str
    def __init__(self, first_four: _Optional[str] = ..., last_four: _Optional[str] = ..., number_length: _Optional[int] = ..., card_ref: _Optional[str] = ...) -> None: ...

class Faults(_message.Message):
    __slots__ = ("latency", "latency_jitter", "error_rate", "error_code", "down", "outages", "break_after_cards", "stall_after_cards", "max_concurrent", "misbehaviour")
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_JITTER_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    DOWN_FIELD_NUMBER: _ClassVar[int]
    OUTAGES_FIELD_NUMBER: _ClassVar[int]
    BREAK_AFTER_CARDS_FIELD_NUMBER: _ClassVar[int]
    STALL_AFTER_CARDS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    MISBEHAVIOUR_FIELD_NUMBER: _ClassVar[int]
    latency: float
    latency_jitter: float
    error_rate: float
    error_code: str
    down: bool
    outages: _containers.RepeatedCompositeFieldContainer[OutageWindow]
    break_after_cards: int
    stall_after_cards: int
    max_concurrent: int
    misbehaviour: Misbehaviour
    def __init__(self, latency: _Optional[float] = ..., latency_jitter: _Optional[float] = ..., error_rate: _Optional[float] = ..., error_code: _Optional[str] = ..., down: _Optional[bool] = ..., outages: _Optional[_Iterable[_Union[OutageWindow, _Mapping]]] = ..., break_after_cards: _Optional[int] = ..., stall_after_cards: _Optional[int] = ..., max_concurrent: _Optional[int] = ..., misbehaviour: _Optional[_Union[Misbehaviour, str]] = ...) -> None: ...

class OutageWindow(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetFaultsRequest(_message.Message):
    __slots__ = ("bank_code", "faults")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    faults: Faults
    def __init__(self, bank_code: _Optional[str] = ..., faults: _Optional[_Union[Faults, _Mapping]] = ...) -> None: ...

class SetFaultsResponse(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: Faults
    def __init__(self, faults: _Optional[_Union[Faults, _Mapping]] = ...) -> None: ...

class GetFaultsRequest(_message.Message):
    __slots__ = ("bank_code",)
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    def __init__(self, bank_code: _Optional[str] = ...) -> None: ...

class GetFaultsResponse(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: Faults
    def __init__(self, faults: _Optional[_Union[Faults, _Mapping]] = ...) -> None: ...

class ListBanksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBanksResponse(_message.Message):
    __slots__ = ("banks",)
    BANKS_FIELD_NUMBER: _ClassVar[int]
    banks: _containers.RepeatedCompositeFieldContainer[SimulatedBank]
    def __init__(self, banks: _Optional[_Iterable[_Union[SimulatedBank, _Mapping]]] = ...) -> None: ...

class SimulatedBank(_message.Message):
    __slots__ = ("bank_code", "address", "call_count", "faults", "overlap_count", "max_calls_per_query")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CALL_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_CALLS_PER_QUERY_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    address: str
    call_count: int
    faults: Faults
    overlap_count: int
    max_calls_per_query: int
    def __init__(self, bank_code: _Optional[str] = ..., address: _Optional[str] = ..., call_count: _Optional[int] = ..., faults: _Optional[_Union[Faults, _Mapping]] = ..., overlap_count: _Optional[int] = ..., max_calls_per_query: _Optional[int] = ...) -> None: ...
