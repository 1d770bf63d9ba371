"""The run-time state of one simulated bank that the fleet, the bank's
servicer and the admin API share: its fault switches and call counters."""

from __future__ import annotations

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
    case_count: int = 0
    """Card cases answered (OpenCardCase calls that succeeded)."""
    issued: IssuedCards = field(default_factory=IssuedCards)
    """Cards issued at run time (admin IssueCard), on top of the records."""
