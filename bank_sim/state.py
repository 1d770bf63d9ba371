"""The run-time state of one simulated bank that the fleet, the bank's
servicer and the admin API share: its fault switches and call counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bank_sim.faults import Faults
from bank_sim.issued import IssuedCards


@dataclass
class BankState:
    code: str
    faults: Faults
    """Swapped whole; each call reads the value in force when it starts."""
    call_count: int = 0
    """ListCards calls received, refused ones included."""
    in_flight: int = 0
    """ListCards calls being answered right now (for max_concurrent)."""
    peak_in_flight: int = 0
    """The most ListCards calls ever answered here at once (tests check that
    the hub's per-bank cap holds across all its replicas together)."""
    session_streams: int = 0
    """Session streams (CardSessionService.ListCardsSession) that carried at
    least one exchange; each exchange counts as a ListCards call above."""
    case_count: int = 0
    """Card cases answered (OpenCardCase calls that succeeded)."""
    issued: IssuedCards = field(default_factory=IssuedCards)
    """Cards issued at run time (admin IssueCard), on top of the records."""
    overlaps: int = 0
    """Calls that arrived while another call for the same query id was still
    in flight at this bank (refused ones included). The hub must never do
    that, even with several replicas (issue 8: one replica holds a bank
    task's lease at a time); hub replica tests assert it stays 0."""
    max_per_query: int = 0
    """The most calls for one query id ever in flight here at once (1 when
    every query was asked once at a time; 0 before any call)."""
    by_query: Counter[str] = field(default_factory=Counter)
    """Calls in flight per query id; an entry is dropped when its last call ends."""

    def call_started(self, query_id: str) -> None:
        """Counts a call for `query_id` that is now in flight (any call, from
        its first byte to its last, refused or not)."""
        self.call_count += 1
        if self.by_query[query_id] > 0:
            self.overlaps += 1
        self.by_query[query_id] += 1
        self.max_per_query = max(self.max_per_query, self.by_query[query_id])

    def call_ended(self, query_id: str) -> None:
        self.by_query[query_id] -= 1
        if self.by_query[query_id] <= 0:
            del self.by_query[query_id]
