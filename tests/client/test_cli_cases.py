"""The `cardlookup` CLI's issue-12 parts against a running hub: the report
numbers its cards, `not-mine` opens a case at the bank, `list` shows it."""

from __future__ import annotations

import datetime as dt
import re

from cardlookup.pki import PkiPaths
from client import requests
from tests.api.helpers import HubHarness
from tests.client.test_cli import cli


async def test_not_mine_opens_a_case_and_the_history_shows_it(harness: HubHarness, pki: PkiPaths) -> None:
    person = harness.population.demo_person(harness.clock.now().date())
    await harness.enrol(person)
    query = await harness.ready_query(person, ["306"])
    truth = harness.population.expected_answer("306", person.id_number).listed
    assert truth, "the demo person holds cards at 306"
    password = ("--password", person.payment_password)
    code, out = await cli(harness, pki, "report", "--user-id", person.user_id, "--query-id", query.query_id, *password)
    assert code == 0 and re.search(r"^\S*\s*1\s", out, re.M), out
    code, out = await cli(
        harness, pki, "not-mine", "--user-id", person.user_id, "--query-id", query.query_id, "--card", "1", *password
    )
    assert code == 0, out
    assert "card suspended" in out and "case C306-" in out
    assert f"{truth[0].first_four} **** {truth[0].last_four}" in out
    code, out = await cli(harness, pki, "list", "--user-id", person.user_id)
    assert code == 0 and "Not my card" in out and "not mine: card suspended" in out and "C306-" in out
    code, out = await cli(
        harness, pki, "not-mine", "--user-id", person.user_id, "--query-id", query.query_id, "--card", "0", *password
    )
    assert code == 1 and "(--card)" in out


async def test_query_tracks_new_cards_and_report_marks_them(harness: HubHarness, pki: PkiPaths) -> None:
    person = harness.population.demo_person(harness.clock.now().date())
    await harness.enrol(person)
    verification_id, sms = await harness.verify(person)
    code, out = await cli(
        harness, pki, "query", "--user-id", person.user_id, "--verification-id", verification_id,
        "--code", sms, "--banks", "306", "--track-new-cards",
    )  # fmt: skip
    assert code == 0 and "is ready" in out, out
    harness.clock.advance(dt.timedelta(days=7, minutes=1))
    card = harness.fleet.issue_card("306", person.id_number, "debit")
    verification_id, sms = await harness.verify(person)
    request = requests.create_query(
        user_id=person.user_id,
        request_id="second-lookup",
        verification_id=verification_id,
        sms_code=sms,
        face_attestation=harness.face.attest(person.user_id, verification_id, harness.clock.now()),
        consent_text_version=(await harness.client.list_banks(person.user_id)).consent_text_version,
        bank_codes=["306"],
    )
    query = await harness.client.create_query_request(requests.tracking_new_cards(request))
    await harness.until_ready(person, query.query_id)
    code, out = await cli(
        harness, pki, "report", "--user-id", person.user_id, "--query-id", query.query_id,
        "--password", person.payment_password,
    )  # fmt: skip
    assert code == 0 and "were not in your previous lookup" in out
    marked = [line for line in out.splitlines() if "NEW" in line and "****" in line]
    assert len(marked) == 1 and card.number[-4:] in marked[0], out
