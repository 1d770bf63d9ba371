"""Domain values of the hub: plain dataclasses shared by the engine, the
store, the report builder and the API servicer. No gRPC, no SQL here.

Dependency direction: servicers -> domain services -> store / fan-out. The
generated protobuf types appear only in servicers and in the fan-out's
bank-facing code; everything in between speaks these types.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

CardKind = Literal["debit", "credit"]


class QueryState(StrEnum):
    ACCEPTED = "ACCEPTED"
    RUNNING = "RUNNING"
    READY = "READY"
    EXPIRED = "EXPIRED"


class BankState(StrEnum):
    PENDING = "PENDING"
    ANSWERED = "ANSWERED"
    NOT_ANSWERED = "NOT_ANSWERED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class Subject:
    """The real-name identity sent to banks. Never logged: repr is masked."""

    full_name: str = field(repr=False)
    id_number: str = field(repr=False)

    def __repr__(self) -> str:
        return "Subject(<redacted>)"


@dataclass(frozen=True)
class NewQuery:
    """What the API hands the engine once every user rule has passed."""

    query_id: str
    user_id: str
    subject: Subject
    bank_codes: tuple[str, ...]
    consent_text_version: str


@dataclass(frozen=True)
class BankProgress:
    bank_code: str
    state: BankState
    reason: str = ""
    """Machine-readable, for REJECTED / NOT_ANSWERED (e.g. FULL_CARD_NUMBER)."""
    attempt_count: int = 0
    card_count: int = 0
    finish_time: dt.datetime | None = None


@dataclass(frozen=True)
class QueryRecord:
    query_id: str
    user_id: str
    state: QueryState
    bank_codes: tuple[str, ...]
    banks: tuple[BankProgress, ...]
    """One per bank, in the order of bank_codes."""
    create_time: dt.datetime
    report_due_time: dt.datetime
    consent_text_version: str
    ready_time: dt.datetime | None = None
    report_expire_time: dt.datetime | None = None


@dataclass(frozen=True)
class ReportCard:
    bank_code: str
    kind: CardKind
    first_four: str
    last_four: str
    number_length: int
    card_ref: str = field(default="", repr=False)
    """The bank's opaque reference (issue 12: "not my card" cases name the
    card to the bank with it). Kept only inside the sealed answer/report."""
    new_since_last_lookup: bool = False
    """Issue 12: set when the report is read (never stored) if the card is
    not in the user's previous record (Report.new_cards_marked)."""


@dataclass(frozen=True)
class BankSection:
    """A bank's part of a report (R7, R13)."""

    bank_code: str
    state: BankState
    reason: str
    debit_count: int
    credit_count: int
    unlisted: dict[str, int]
    """Unlisted cards by R13 reason name (NO_PHONE_ON_FILE, ...)."""


NoticeKind = Literal["UNLISTED_CARDS", "SAFETY", "UNRECOGNISED_CARDS", "CREDIT_REPORT"]


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    text: str
    english_text: str


@dataclass(frozen=True)
class Report:
    query_id: str
    generate_time: dt.datetime
    expire_time: dt.datetime
    banks: tuple[BankSection, ...]
    cards: tuple[ReportCard, ...]
    notices: tuple[Notice, ...]
    new_cards_marked: bool = False
    """Issue 12: the cards were compared with the previous lookup's record."""
    sealed: bytes = b""
    """Issue 17: the report sealed to the user's device (a bundle of
    cardlookup.sealed_report); then banks, cards and notices are empty."""
    sealed_previous_cards: bytes = b""
    """Issue 17: the previous lookup's new-card record, sealed to the device."""


@dataclass(frozen=True)
class QueryEvent:
    """A step of a query's progress, for WatchQuery."""

    query: QueryRecord
    changed_bank_code: str | None
    """None for the first snapshot of a watch."""


class ReportUnavailable(Exception):
    """The report cannot be read: not ready yet, or expired (R11)."""

    def __init__(self, state: QueryState, expire_time: dt.datetime | None = None) -> None:
        super().__init__(f"report unavailable: query is {state}")
        self.state = state
        self.expire_time = expire_time
