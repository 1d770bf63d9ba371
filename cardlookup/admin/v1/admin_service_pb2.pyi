from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState

class GetBankHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BankHealth(_message.Message):
    __slots__ = ("bank_code", "display_name", "recent_calls", "success_rate", "latency_p50_seconds", "latency_p99_seconds", "breaker_state", "in_flight", "last_error_reason")
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    RECENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    bank_code: str
    display_name: str
    recent_calls: int
    success_rate: float
    latency_p50_seconds: float
    latency_p99_seconds: float
    breaker_state: BreakerState
    in_flight: int
    last_error_reason: str
    def __init__(self, bank_code: _Optional[str] = ..., display_name: _Optional[str] = ..., recent_calls: _Optional[int] = ..., success_rate: _Optional[float] = ..., latency_p50_seconds: _Optional[float] = ..., latency_p99_seconds: _Optional[float] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., in_flight: _Optional[int] = ..., last_error_reason: _Optional[str] = ...) -> None: ...

class GetBankHealthResponse(_message.Message):
    __slots__ = ("banks",)
    BANKS_FIELD_NUMBER: _ClassVar[int]
    banks: _containers.RepeatedCompositeFieldContainer[BankHealth]
    def __init__(self, banks: _Optional[_Iterable[_Union[BankHealth, _Mapping]]] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, changes: _Optional[_Iterable[str]] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("api_calls_in_progress", "bank_calls_in_flight")
    API_CALLS_IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    BANK_CALLS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    api_calls_in_progress: int
    bank_calls_in_flight: int
    def __init__(self, api_calls_in_progress: _Optional[int] = ..., bank_calls_in_flight: _Optional[int] = ...) -> None: ...

class SetLogLevelRequest(_message.Message):
    __slots__ = ("logger", "level")
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    logger: str
    level: str
    def __init__(self, logger: _Optional[str] = ..., level: _Optional[str] = ...) -> None: ...

class SetLogLevelResponse(_message.Message):
    __slots__ = ("logger", "previous_level", "level")
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    logger: str
    previous_level: str
    level: str
    def __init__(self, logger: _Optional[str] = ..., previous_level: _Optional[str] = ..., level: _Optional[str] = ...) -> None: ...

class RewrapRequest(_message.Message):
    __slots__ = ("batch_size",)
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    def __init__(self, batch_size: _Optional[int] = ...) -> None: ...

class RewrapResponse(_message.Message):
    __slots__ = ("rewrapped", "remaining", "unknown", "current_key_id", "remaining_by_key_id")
    class RemainingByKeyIdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REWRAPPED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    CURRENT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINING_BY_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    rewrapped: int
    remaining: int
    unknown: int
    current_key_id: str
    remaining_by_key_id: _containers.ScalarMap[str, int]
    def __init__(self, rewrapped: _Optional[int] = ..., remaining: _Optional[int] = ..., unknown: _Optional[int] = ..., current_key_id: _Optional[str] = ..., remaining_by_key_id: _Optional[_Mapping[str, int]] = ...) -> None: ...
