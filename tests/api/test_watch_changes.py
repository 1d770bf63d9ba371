"""WatchQuery with WATCH_VIEW_CHANGES (issue 10 item 3): after the first
message, each one carries only what changed, the client folds them back into
the full query, and the default view is unchanged. Sizes are counted in
bytes (not timed): a 1,000-bank query must stream at most 1 MB."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from cardlookup.banks import DEFAULT_BANK_CODES, bank_fleet
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from client.requests import apply_changes
from hub.api.convert import WatchedQuery
from hub.core.config import HubConfig
from hub.core.domain import BankProgress, BankState, QueryRecord, QueryState
from hub.identity.journey import QueryView
from tests.api.helpers import HubHarness


def _events(codes: list[str]) -> list[tuple[QueryView, str]]:
    """The views a watcher of a query over `codes` is shown: the snapshot,
    then one bank final per event, the last one with READY."""
    t0 = dt.datetime(2026, 11, 28, 8, tzinfo=dt.UTC)
    record = QueryRecord(
        query_id="00000000-0000-4000-8000-000000000001",
        user_id="u1",
        state=QueryState.ACCEPTED,
        bank_codes=tuple(codes),
        banks=tuple(BankProgress(c, BankState.PENDING, attempt_count=1) for c in codes),
        create_time=t0,
        report_due_time=t0 + dt.timedelta(hours=24),
        consent_text_version="v1",
    )
    out = [(QueryView(record, record.state, ()), "")]
    banks = list(record.banks)
    for i, code in enumerate(codes):
        banks[i] = BankProgress(code, BankState.ANSWERED, "", 1, i % 4, t0 + dt.timedelta(milliseconds=i))
        last = i == len(codes) - 1
        record = dataclasses.replace(
            record,
            banks=tuple(banks),
            state=QueryState.READY if last else QueryState.RUNNING,
            ready_time=t0 + dt.timedelta(seconds=2) if last else None,
            report_expire_time=t0 + dt.timedelta(days=7) if last else None,
        )
        out.append((QueryView(record, record.state, ()), code))
    return out


def test_a_1000_bank_watch_streams_under_1_mb_of_changes_that_rebuild_the_full_query(
    pki: PkiPaths, tmp_path: Path
) -> None:
    codes = [b.code for b in bank_fleet(1000)]
    config = HubConfig.dev(pki, {c: "127.0.0.1:1" for c in DEFAULT_BANK_CODES}, tmp_path)
    full, changes = WatchedQuery(config), WatchedQuery(config, changes_only=True)
    full_bytes = changes_bytes = 0
    kept: pb.Query | None = None
    for n, (view, changed) in enumerate(_events(codes)):
        whole = svc.WatchQueryResponse(query=full.convert(view, changed), changed_bank_code=changed)
        delta = svc.WatchQueryResponse(query=changes.convert(view, changed), changed_bank_code=changed)
        full_bytes += whole.ByteSize()
        changes_bytes += delta.ByteSize()
        if kept is None:
            assert delta == whole  # the first message is the whole query in both views
            kept = pb.Query()
            kept.CopyFrom(delta.query)
            continue
        assert [o.bank_code for o in delta.query.bank_outcomes] == [changed]
        assert not delta.query.bank_codes and not delta.query.acceptance_notice
        apply_changes(kept, delta.query)
        if n % 97 == 0 or n == len(codes):
            assert kept == whole.query, n
    assert kept is not None and kept.state == pb.QUERY_STATE_READY and kept.HasField("ready_time")
    assert changes_bytes <= 1_000_000 < full_bytes


@pytest.mark.both_stores
async def test_watch_with_changes_only_through_the_hub(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    banks = ["102", "103", "104", "105", "301"]
    query = await hub.create(person, banks)
    messages = [m async for m in hub.client.watch_query(person.user_id, query.query_id, changes_only=True)]
    first, rest = messages[0], messages[1:]
    assert sorted(o.bank_code for o in first.query.bank_outcomes) == sorted(banks)
    kept = pb.Query()
    kept.CopyFrom(first.query)
    for m in rest:
        if m.changed_bank_code:
            assert [o.bank_code for o in m.query.bank_outcomes] == [m.changed_bank_code]
            assert not m.query.bank_codes
        else:
            # The hub caught up with several outcomes at once (the fan-out can
            # finish while the watch starts): the contract resends the whole query.
            assert sorted(o.bank_code for o in m.query.bank_outcomes) == sorted(banks)
            assert list(m.query.bank_codes) == banks
        apply_changes(kept, m.query)
    assert kept.state == pb.QUERY_STATE_READY
    final = await hub.client.get_query(person.user_id, query.query_id)
    assert kept == final
    # The default view is unchanged: every message the whole query.
    again = [m async for m in hub.client.watch_query(person.user_id, query.query_id)]
    assert len(again) == 1 and again[0].query == final
