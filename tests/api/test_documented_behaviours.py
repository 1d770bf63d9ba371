"""Issue 18 item 4: behaviours docs/app-backend.md states, against a real hub
and the simulated banks, so that the sentences cannot drift from the code:
card_id's shape is checked before it is looked up; the fifth wrong payment
password already answers PASSWORD_LOCKED and the lock is the user's; no
WatchQuery message carries card_cases; error metadata times are whole
seconds rounded up."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cardlookup.hub.v1 import resources_pb2 as pb
from tests.api.helpers import HubHarness, refused

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "app-backend.md").read_text(encoding="utf-8")
PROTOS = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "protos/cardlookup/hub/v1").glob("*.proto")))


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


async def test_card_id_shape_is_checked_before_the_card_is_looked_up(harness: HubHarness) -> None:
    person = harness.eligible()
    await harness.enrol(person)
    query = await harness.ready_query(person, ["102", "103", "104", "105"])
    report = await harness.client.get_report(person.user_id, query.query_id, person.payment_password)
    assert report.cards
    bad = await refused(
        "INVALID_FIELD",
        harness.client.flag_card(person.user_id, query.query_id, person.payment_password, "no-such-card"),
    )
    assert bad.metadata == {"field": "card_id"} and [v.field for v in bad.field_violations] == ["card_id"]
    missing = str(len(report.cards) + 1)  # well-formed, but the report has no such card
    gone = await refused(
        "CARD_NOT_FOUND", harness.client.flag_card(person.user_id, query.query_id, person.payment_password, missing)
    )
    assert gone.metadata == {"card_id": missing}
    assert "`no-such-card`, is `INVALID_ARGUMENT` / `INVALID_FIELD`" in flat(DOC)
    assert '(e.g. "no-such-card") is INVALID_ARGUMENT / INVALID_FIELD' in flat(re.sub(r"//", "", PROTOS))


async def test_no_watch_message_carries_card_cases(harness: HubHarness) -> None:
    person = harness.eligible()
    await harness.enrol(person)
    query = await harness.ready_query(person, ["102", "103", "104", "105"])
    report = await harness.client.get_report(person.user_id, query.query_id, person.payment_password)
    await harness.client.flag_card(person.user_id, query.query_id, person.payment_password, report.cards[0].card_id)
    assert len((await harness.client.get_query(person.user_id, query.query_id)).card_cases) == 1
    for changes_only in (False, True):
        messages = [m async for m in harness.client.watch_query(person.user_id, query.query_id, changes_only)]
        assert messages and all(not m.query.card_cases for m in messages)
        assert messages[-1].query.state == pb.QUERY_STATE_READY
    assert "No WatchQuery message, in either view, carries `card_cases`" in flat(DOC)
    assert "never in a WatchQuery message (either view)" in flat(re.sub(r"//", "", PROTOS))


async def test_the_fifth_wrong_password_locks_and_the_lock_is_the_users(harness: HubHarness) -> None:
    person = harness.eligible()
    await harness.enrol(person)
    query = await harness.ready_query(person, ["102"])
    wrong = "000000" if person.payment_password != "000000" else "111111"
    left = []
    for _ in range(4):
        error = await refused(
            "PAYMENT_PASSWORD_WRONG", harness.client.get_report(person.user_id, query.query_id, wrong)
        )
        left.append(error.metadata["attempts_left"])
    assert left == ["4", "3", "2", "1"]
    fifth = await refused("PASSWORD_LOCKED", harness.client.get_report(person.user_id, query.query_id, wrong))
    assert set(fifth.metadata) == {"unlock_time"}
    # The user's lock: the right password is refused by the other calls that take it too.
    right = person.payment_password
    await refused("PASSWORD_LOCKED", harness.client.change_payment_password(person.user_id, right, "246810"))
    await refused("PASSWORD_LOCKED", harness.client.flag_card(person.user_id, query.query_id, right, "1"))
    text = flat(DOC)
    assert "the fifth already answers `PASSWORD_LOCKED`" in text and "The lock is the user's, not the report's" in text
    assert "The fifth wrong password in a row already answers this" in flat(re.sub(r"//", "", PROTOS))


async def test_metadata_times_are_whole_seconds_rounded_up(harness: HubHarness) -> None:
    harness.clock.set(harness.clock.now().replace(microsecond=0) + dt.timedelta(seconds=1, microseconds=250_000))
    person = harness.eligible()
    await harness.enrol(person)
    await harness.client.start_verification(person.user_id)
    error = await refused("SMS_RATE_LIMITED", harness.client.start_verification(person.user_id))
    retry = error.metadata["retry_time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", retry)  # no fraction
    exact = harness.clock.now() + harness.server.config.timings.sms_resend_interval
    assert dt.datetime.fromisoformat(retry) == exact.replace(microsecond=0) + dt.timedelta(seconds=1)
    assert error.retry_delay == dt.datetime.fromisoformat(retry) - harness.clock.now()
    assert "rounded **up** to a whole second" in DOC
