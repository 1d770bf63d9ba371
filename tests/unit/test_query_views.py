"""A query as the user sees it (hub.identity.query_views): R11's expired
state, ListQueries' page size and page tokens, without the journey."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from hub.core.domain import QueryRecord, QueryState
from hub.identity.errors import RuleViolation
from hub.identity.query_views import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_token,
    effective_state,
    encode_token,
    expired,
    page_size,
)

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def record(state: QueryState, expire: dt.datetime | None = None) -> QueryRecord:
    return QueryRecord("q-1", "u-1", state, ("102",), (), T0, T0 + dt.timedelta(hours=24), "v1", None, expire)


def test_r11_a_ready_report_past_its_expiry_shows_expired() -> None:
    expire = T0 + dt.timedelta(days=7)
    ready = record(QueryState.READY, expire)
    assert effective_state(ready, expire - dt.timedelta(microseconds=1)) is QueryState.READY
    assert effective_state(ready, expire) is QueryState.EXPIRED
    assert effective_state(record(QueryState.RUNNING), expire + dt.timedelta(days=1)) is QueryState.RUNNING
    refusal = expired(expire)
    assert (refusal.reason, refusal.metadata) == ("REPORT_EXPIRED", {"expire_time": "2026-03-08T08:00:00Z"})
    assert expired(None).metadata == {}


def test_page_size_zero_is_the_default_and_out_of_range_is_an_invalid_field() -> None:
    assert (page_size(0), page_size(1), page_size(MAX_PAGE_SIZE)) == (DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    for bad in (-1, MAX_PAGE_SIZE + 1):
        with pytest.raises(RuleViolation) as refused:
            page_size(bad)
        assert (refused.value.reason, refused.value.metadata.get("field")) == ("INVALID_FIELD", "page_size")


def test_a_page_token_round_trips_for_its_user_only() -> None:
    token = encode_token("u-1", record(QueryState.READY))
    assert decode_token(token, "u-1") == (T0, "q-1")
    forged = base64.urlsafe_b64encode(json.dumps({"u": "u-1", "t": "yesterday", "q": "q"}).encode()).decode()
    for bad, user in ((token, "u-2"), ("not base64!", "u-1"), (forged, "u-1")):
        with pytest.raises(RuleViolation) as refused:
            decode_token(bad, user)
        assert (refused.value.reason, refused.value.metadata.get("field")) == ("INVALID_FIELD", "page_token")
