"""WatchQuery re-converts only the bank that changed: at every step the
incrementally patched message equals a full conversion of the same view."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from cardlookup.pki import PkiPaths
from hub.api.convert import WatchedQuery, query
from hub.core.config import HubConfig
from hub.core.domain import BankProgress, BankState, QueryRecord, QueryState
from hub.identity.journey import QueryView
from hub.store.identity import AccessEvent

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def _record(codes: tuple[str, ...]) -> QueryRecord:
    return QueryRecord(
        query_id="6f1c9a52-8d3e-4b7a-9c1d-2e5f7a8b9c0d",
        user_id="u1",
        state=QueryState.ACCEPTED,
        bank_codes=codes,
        banks=tuple(BankProgress(c, BankState.PENDING) for c in codes),
        create_time=T0,
        report_due_time=T0 + dt.timedelta(hours=24),
        consent_text_version="2022-03-01",
    )


def test_incremental_watch_messages_equal_full_conversions(pki: PkiPaths, tmp_path: Path) -> None:
    codes = ("102", "103", "104", "105", "301")
    config = HubConfig.dev(pki, {c: "127.0.0.1:1" for c in codes}, tmp_path)
    record = _record(codes)
    watched = WatchedQuery(config)
    view = QueryView(record, record.state, ())
    assert watched.convert(view, "") == query(config, view)
    outcomes = [
        ("104", BankState.ANSWERED, ""),
        ("102", BankState.REJECTED, "FULL_CARD_NUMBER"),
        ("301", BankState.NOT_ANSWERED, "REPORT_WINDOW_CLOSED:UNAVAILABLE"),
        ("103", BankState.ANSWERED, ""),
        ("105", BankState.ANSWERED, ""),
    ]
    for step, (code, state, reason) in enumerate(outcomes, start=1):
        done = BankProgress(
            code, state, reason, attempt_count=step, card_count=step, finish_time=T0 + dt.timedelta(minutes=step)
        )
        banks = tuple(done if b.bank_code == code else b for b in record.banks)
        last = step == len(outcomes)
        record = dataclasses.replace(
            record,
            banks=banks,
            state=QueryState.READY if last else QueryState.RUNNING,
            ready_time=T0 + dt.timedelta(minutes=step) if last else None,
            report_expire_time=T0 + dt.timedelta(days=7, minutes=step) if last else None,
        )
        events = (AccessEvent(T0 + dt.timedelta(hours=1), "VIEWED"),) if last else ()
        view = QueryView(record, record.state, events)
        assert watched.convert(view, code) == query(config, view), f"step {step} ({code})"
