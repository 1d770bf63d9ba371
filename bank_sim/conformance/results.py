"""The vocabulary of the suite: a check, its outcome, and how a check says
it failed or could not run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bank_sim.conformance.probe import Probe


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    NEW = "new"
    """Not run: the check is newer than the profile the bank certifies
    against ("new since your profile")."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    """Stable dotted name, e.g. "consent.expired_refused"."""
    description: str
    """The rule, in one line."""
    outcome: Outcome
    explanation: str = ""
    """On failure: what the bank did and what to change. On skip: why."""
    since: str = ""
    """The guide version that introduced the check."""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS


class CheckFailed(Exception):
    """The bank broke the rule; the message tells a bank engineer what to fix."""


class CheckSkipped(Exception):
    """The check could not be judged (an optional input is missing, or a
    check it depends on failed)."""


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[Probe], Awaitable[None]]
    """Returns when the rule holds; raises CheckFailed or CheckSkipped."""
    since: str = ""
    """The bank guide version that introduced the rule (a version of
    bank_sim.conformance.versions, e.g. "1.1"). Every check must say it:
    tests/bank/test_conformance_profiles.py fails for one that does not."""
