"""A query as the user sees it, and the pages of their history: the view
the journey (hub.identity.journey) answers with, the state a report past its
7 days shows (R11), and the page tokens of ListQueries.

Plain values and pure functions: no store, no engine, no gRPC.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass

from hub.core.domain import QueryRecord, QueryState
from hub.identity.errors import RuleViolation, invalid, rfc3339
from hub.store.identity import AccessEvent

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True)
class QueryView:
    """A query as the user sees it."""

    record: QueryRecord
    state: QueryState
    """The engine's state, except that a report past its 7 days shows
    EXPIRED even before the sweeper has deleted it (R11)."""
    access_events: tuple[AccessEvent, ...]


@dataclass(frozen=True)
class QueryPage:
    queries: tuple[QueryView, ...]
    next_page_token: str


def effective_state(record: QueryRecord, now: dt.datetime) -> QueryState:
    """The state the user sees now: READY past its expiry time is EXPIRED."""
    if record.state is QueryState.READY and record.report_expire_time is not None and record.report_expire_time <= now:
        return QueryState.EXPIRED
    return record.state


def expired(expire_time: dt.datetime | None) -> RuleViolation:
    """The refusal of a report deleted after its 7 days (R11)."""
    meta = {"expire_time": rfc3339(expire_time)} if expire_time else {}
    return RuleViolation("REPORT_EXPIRED", "the report was deleted 7 days after it was generated", meta)


def page_size(requested: int) -> int:
    """ListQueries' page size: 0 means the default; outside 0..100 is refused."""
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise invalid("page_size", f"page_size must be 0 to {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def encode_token(user_id: str, last: QueryRecord) -> str:
    """The token of the page after `last` (the oldest query of this page)."""
    raw = json.dumps({"u": user_id, "t": last.create_time.isoformat(), "q": last.query_id})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_token(token: str, user_id: str) -> tuple[dt.datetime, str]:
    """(create time, query id) of the last query of the previous page;
    INVALID_FIELD for a token this hub did not issue for this user."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["u"] != user_id:
            raise ValueError("token of another user")
        after = dt.datetime.fromisoformat(data["t"])
        if after.tzinfo is None:
            raise ValueError("a time without a time zone")
        return after, str(data["q"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid("page_token", "page_token is not one this hub issued for this user") from None
