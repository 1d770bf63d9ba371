"""Your records: the one seam between the kit and your bank's systems.

The kit asks one question, `DataSource.find(id_number, query_id, now)`:
which cards does this person hold, for this query, at this time? Write a
class with that method over your own systems (a core-banking API, a
database, a cache) and pass it to the kit by putting it in a module of
`bank_kit/sources/` (see `bank_kit/README.md`, "Your records"). Two examples
are there:

- `sources/json_records.py`: a JSON file (example_records.json), read once;
- `sources/sqlite_records.py`: an SQLite database, which also pins the time a
  query was first seen, so a retry of that query gets the same answer even if
  an ID document expires at midnight between two attempts.

When your systems cannot answer, raise `SourceUnavailable(reason)`: the kit
ends the call UNAVAILABLE with that ErrorInfo reason, and the hub retries
later. Any other exception is a bug in your class (the kit answers INTERNAL).

Card states (docs/bank-integration.md, "Which cards are listed (R13)"): a
closed card is no longer the person's card, leave it out (neither listed nor
counted); a frozen card or one reported lost is still theirs and is listed
like any other (unless an R13 condition applies): the user must learn of a
card opened in their name whatever its state.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Self

# R13: a card with several conditions counts once, under the first of these.
R13_CONDITIONS = ("ID_DOCUMENT_EXPIRED", "NO_PHONE_ON_FILE", "CARD_NOT_PRESENT_DISABLED")
CARD_KINDS = ("debit", "credit")
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,62}")


@dataclass(frozen=True)
class Card:
    """A card as your core banking system holds it: the full number stays
    inside the kit (bank.py masks it)."""

    number: str
    kind: str
    """"debit" or "credit"."""
    conditions: frozenset[str] = frozenset()
    """The R13 conditions that apply now; empty = listed."""

    def __post_init__(self) -> None:
        if self.kind not in CARD_KINDS:
            raise ValueError(f"card kind must be one of {CARD_KINDS}")
        if not (self.number.isascii() and self.number.isdigit() and 13 <= len(self.number) <= 19):
            raise ValueError("a card number is 13 to 19 ASCII digits")
        if not self.conditions <= set(R13_CONDITIONS):
            raise ValueError(f"card conditions must be among {R13_CONDITIONS}")


@dataclass(frozen=True)
class Customer:
    full_name: str
    """The name as on file; the kit answers as for a stranger if the
    request's name differs."""
    cards: tuple[Card, ...]
    """The cards the person holds (closed cards left out), in a stable order."""


class SourceUnavailable(Exception):
    """Your systems cannot answer now: the call ends UNAVAILABLE with
    `reason` (an UPPER_SNAKE token; never personal data) and the hub retries."""

    def __init__(self, reason: str = "RECORDS_UNAVAILABLE") -> None:
        if not _REASON.fullmatch(reason):
            raise ValueError("reason must be an UPPER_SNAKE token of at most 63 characters")
        super().__init__(reason)
        self.reason = reason


class DataSource(Protocol):
    """The one interface the kit needs from your bank: `find`. A class in
    bank_kit/sources/ also says how the server opens it and how the kit's
    tests fill it with their test customers."""

    name: ClassVar[str]
    """What `--source NAME:LOCATION` calls it, e.g. "sqlite"."""

    @classmethod
    def open(cls, location: str) -> Self:
        """The source at `location` (a path, a URL, a DSN: yours to define)."""
        ...

    @classmethod
    def example(cls, customers_json: Path, workdir: Path) -> Self:
        """A source holding the customers of a records JSON file (the shape
        of example_records.json), for the tests and the conformance run;
        `workdir` is an empty folder it may use."""
        ...

    def find(self, id_number: str, query_id: str, now: dt.datetime) -> Customer | None:
        """The person with this ID number and their cards, or None for a
        stranger. `query_id` is the hub's query (retries carry the same one:
        answer them alike for 24 hours); `now` is the kit's clock (UTC).
        Raise SourceUnavailable when your systems cannot answer."""
        ...
