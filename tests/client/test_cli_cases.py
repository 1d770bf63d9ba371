"""The `cardlookup` CLI's issue-12 parts against a running hub: the report
numbers its cards, `not-mine` opens a case at the bank, `list` shows it."""

from __future__ import annotations

import re

from cardlookup.pki import PkiPaths
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
