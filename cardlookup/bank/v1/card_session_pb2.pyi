import datetime

from cardlookup.bank.v1 import card_directory_pb2 as _card_directory_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListCardsSessionRequest(_message.Message):
    __slots__ = ("exchange_id", "list_cards", "cancel", "timeout")
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    LIST_CARDS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    exchange_id: int
    list_cards: _card_directory_pb2.ListCardsRequest
    cancel: CancelExchange
    timeout: _duration_pb2.Duration
    def __init__(self, exchange_id: _Optional[int] = ..., list_cards: _Optional[_Union[_card_directory_pb2.ListCardsRequest, _Mapping]] = ..., cancel: _Optional[_Union[CancelExchange, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CancelExchange(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCardsSessionResponse(_message.Message):
    __slots__ = ("exchange_id", "card", "summary", "error", "query_id")
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    exchange_id: int
    card: _card_directory_pb2.MaskedCard
    summary: _card_directory_pb2.ListCardsSummary
    error: ExchangeError
    query_id: str
    def __init__(self, exchange_id: _Optional[int] = ..., card: _Optional[_Union[_card_directory_pb2.MaskedCard, _Mapping]] = ..., summary: _Optional[_Union[_card_directory_pb2.ListCardsSummary, _Mapping]] = ..., error: _Optional[_Union[ExchangeError, _Mapping]] = ..., query_id: _Optional[str] = ...) -> None: ...

class ExchangeError(_message.Message):
    __slots__ = ("code", "reason", "domain", "metadata", "message")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    domain: str
    metadata: _containers.ScalarMap[str, str]
    message: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., domain: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., message: _Optional[str] = ...) -> None: ...
