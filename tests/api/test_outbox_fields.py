"""Issue 18 item 3: the development SMS outbox is test-friendly in any
language: a verification record carries its verification id and code as
fields (the text stays the real text), and times have milliseconds."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

from hub.core.notify import read_outbox, verification_code_in
from tests.api.helpers import HubHarness

DOC = (Path(__file__).resolve().parents[2] / "docs" / "app-backend.md").read_text()


async def test_a_verification_record_names_its_id_and_code_with_millisecond_times(harness: HubHarness) -> None:
    harness.clock.set(harness.clock.now().replace(microsecond=0) + dt.timedelta(seconds=1, microseconds=123_456))
    person = harness.eligible()
    await harness.enrol(person)
    started = await harness.client.start_verification(person.user_id)
    (record,) = [m for m in read_outbox(harness.outbox) if m["kind"] == "VERIFICATION_CODE"]
    assert record["verification_id"] == started.verification_id
    assert record["code"] == verification_code_in(record["text"])  # the real text, unchanged
    assert re.fullmatch(r"\d{6}", record["code"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.123Z", record["time"]), record["time"]
    sent = dt.datetime.fromisoformat(record["time"])
    assert sent == harness.clock.now().replace(microsecond=123_000)

    harness.clock.advance(harness.server.config.timings.sms_resend_interval)
    query = await harness.ready_query(person)  # takes a second code, then the ready SMS
    assert query.query_id
    ready: list[dict[str, str]] = []
    while not ready:  # the ready SMS goes out right after READY is stored
        await asyncio.sleep(0.01)
        ready = [m for m in read_outbox(harness.outbox) if m["kind"] == "REPORT_READY"]
    assert ready and "code" not in ready[0] and "verification_id" not in ready[0]
    assert ready[0]["time"].endswith("Z") and "." in ready[0]["time"]


def test_the_doc_shows_the_record() -> None:
    example = re.search(r'^\{"time": .*"kind": "VERIFICATION_CODE".*\}$', DOC, re.M)
    assert example, "docs/app-backend.md shows a verification record"
    keys = set(json.loads(example.group(0).replace("…", "")))
    assert keys == {"time", "phone", "kind", "text", "verification_id", "code"}
