"""Fault switches of one simulated bank: how it fails, slows down or lies.

A `Faults` value is immutable; the fleet swaps a bank's whole value at run
time (config file, `BankFleet.set_faults`, or the admin RPC), and each
ListCards call reads the value in force when it starts.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import grpc


class Misbehaviour(StrEnum):
    """Ways a bank breaks the bank contract: the data rules (the hub must
    reject the answer) or the rules the conformance suite checks. Each one
    breaks exactly one rule and leaves the rest right, except FIRST_GUIDE,
    an old bank that breaks the three rules guide 1.1 added."""

    FULL_CARD_NUMBER = "FULL_CARD_NUMBER"
    """One card carries the full card number in `first_four`."""
    WRONG_DIGITS = "WRONG_DIGITS"
    """One card's `first_four` is not 4 ASCII digits ("62a2")."""
    UNKNOWN_CARD_TYPE = "UNKNOWN_CARD_TYPE"
    """One card's `card_type` is 7, a value outside the CardType enum."""
    SUMMARY_MISMATCH = "SUMMARY_MISMATCH"
    """The summary counts one more (debit) card than the stream carried."""
    OVERSIZED_MESSAGE = "OVERSIZED_MESSAGE"
    """One card message is about 1 MiB: its `card_ref` is huge."""
    CARD_REF_FROM_NUMBER = "CARD_REF_FROM_NUMBER"
    """One card's `card_ref` is its full number in groups of four joined by '-' (R8)."""
    TOO_MANY_CARDS = "TOO_MANY_CARDS"
    """The answer lists one card more than the hub's card cap; all else right."""
    WRONG_REASON_PRECEDENCE = "WRONG_REASON_PRECEDENCE"
    """A card with several R13 conditions counts under the lowest-numbered
    reason instead of the documented precedence."""
    TRAILING_NEWLINE_ACCEPTED = "TRAILING_NEWLINE_ACCEPTED"
    """Validation lets a trailing newline through in full_name and id_number."""
    CALLER_BY_COMMON_NAME = "CALLER_BY_COMMON_NAME"
    """The caller check also accepts the hub's name as a certificate's common
    name, not only as its DNS SubjectAltName."""
    FIRST_GUIDE = "FIRST_GUIDE"
    """A bank built to the first bank guide (1.0) and never updated: the three
    request and answer rules guide 1.1 added are broken at once (caller by
    common name too, trailing newline accepted, lowest-numbered R13 reason).
    Combine with BankSimConfig(card_cases=False, session=False): guide 1.0
    had neither cases nor the session stream.
    It passes `cardlookup-conformance --profile 1.0`."""

    SESSION_WRONG_QUERY_ID = "SESSION_WRONG_QUERY_ID"
    """Session stream only: every response echoes a query_id that is not its
    exchange's (the answer looks like another query's)."""
    SESSION_MESSAGE_AFTER_SUMMARY = "SESSION_MESSAGE_AFTER_SUMMARY"
    """Session stream only: an exchange's summary is sent twice."""
    SESSION_STALL_BLOCKS_OTHERS = "SESSION_STALL_BLOCKS_OTHERS"
    """Session stream only: exchanges are answered one at a time and the
    first of each stream stalls until cancelled, blocking the rest."""

    def breaks(self, rule: Misbehaviour) -> bool:
        """Whether this misbehaviour includes `rule` (itself, or one of the
        rules FIRST_GUIDE breaks)."""
        return self is rule or (self is Misbehaviour.FIRST_GUIDE and rule in _FIRST_GUIDE_BREAKS)


_FIRST_GUIDE_BREAKS = frozenset(
    {Misbehaviour.CALLER_BY_COMMON_NAME, Misbehaviour.TRAILING_NEWLINE_ACCEPTED, Misbehaviour.WRONG_REASON_PRECEDENCE}
)


class FaultsError(ValueError):
    """A fault switch with a value that makes no sense; `field` names it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


_ERROR_CODES = frozenset(c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK)


@dataclass(frozen=True)
class Faults:
    latency: float = 0.0
    """Seconds added before answering."""
    latency_jitter: float = 0.0
    """Plus a uniformly random 0..jitter seconds."""
    error_rate: float = 0.0
    """Probability that a call fails with `error_code` (before any card)."""
    error_code: str = "UNAVAILABLE"
    """A grpc.StatusCode name, never OK."""
    down: bool = False
    """Every call fails UNAVAILABLE (a simple outage switch)."""
    outages: tuple[tuple[dt.datetime, dt.datetime], ...] = ()
    """[start, end) windows, by the fleet's clock, answered UNAVAILABLE."""
    break_after_cards: int | None = None
    """Abort UNAVAILABLE after sending this many cards (no summary)."""
    stall_after_cards: int | None = None
    """After this many cards, hang until the caller cancels / its deadline."""
    max_concurrent: int | None = None
    """Calls in flight beyond this get RESOURCE_EXHAUSTED."""
    misbehaviour: Misbehaviour | None = None

    def __post_init__(self) -> None:
        for name in ("latency", "latency_jitter"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise FaultsError(name, "must be a finite number of seconds >= 0")
        if not _is_number(self.error_rate) or not 0.0 <= self.error_rate <= 1.0:
            raise FaultsError("error_rate", "must be between 0 and 1")
        if not isinstance(self.down, bool):
            raise FaultsError("down", "must be true or false")
        if self.error_code not in _ERROR_CODES:
            raise FaultsError("error_code", "must be a grpc.StatusCode name other than OK")
        for start, end in self.outages:
            if start.tzinfo is None or end.tzinfo is None:
                raise FaultsError("outages", "window times must be timezone-aware")
            if end <= start:
                raise FaultsError("outages", "a window must end after it starts")
        for name in ("break_after_cards", "stall_after_cards"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise FaultsError(name, "must be a whole number >= 0")
        if self.max_concurrent is not None and (not _is_int(self.max_concurrent) or self.max_concurrent < 1):
            raise FaultsError("max_concurrent", "must be >= 1")
        if self.misbehaviour is not None and not isinstance(self.misbehaviour, Misbehaviour):
            raise FaultsError("misbehaviour", "must be a Misbehaviour")

    def delay(self, rng: random.Random) -> float:
        """Seconds to wait before answering this call."""
        return self.latency + (rng.uniform(0.0, self.latency_jitter) if self.latency_jitter else 0.0)

    def in_outage(self, now: dt.datetime) -> bool:
        """Whether a call at `now` falls in an outage (switch or window)."""
        return self.down or any(start <= now < end for start, end in self.outages)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Faults:
        """Faults from a TOML/JSON table; outages as [{start=, end=}] with
        datetimes or RFC 3339 strings."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FaultsError(unknown[0], "is not a fault switch")
        values = dict(raw)
        if "outages" in values:
            try:
                windows = [(w["start"], w["end"]) for w in values["outages"]]
            except (KeyError, TypeError):
                raise FaultsError("outages", "must be a list of {start=, end=} tables") from None
            values["outages"] = tuple((_instant(start), _instant(end)) for start, end in windows)
        if values.get("misbehaviour") is not None:
            try:
                values["misbehaviour"] = Misbehaviour(values["misbehaviour"])
            except ValueError:
                raise FaultsError("misbehaviour", f"must be one of {', '.join(Misbehaviour)}") from None
        return cls(**values)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _instant(value: object) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        raise FaultsError("outages", "window times must be RFC 3339 date-times") from None
    if not isinstance(when, dt.datetime):
        raise FaultsError("outages", "window times must be date-times")
    return when


__all__ = ["Faults", "FaultsError", "Misbehaviour"]
