"""`cardlookup delete-user` against a running hub (issue 22): a wrong
password is refused with exit status 1 and one sentence; the right one
closes the account, and the user is then unknown."""

from __future__ import annotations

from cardlookup.pki import PkiPaths
from tests.api.helpers import HubHarness
from tests.client.test_cli import cli


async def test_delete_user_closes_the_account(harness: HubHarness, pki: PkiPaths) -> None:
    person = harness.eligible(0)
    await harness.enrol(person)
    await harness.ready_query(person, ["102"])
    wrong = "000000" if person.payment_password != "000000" else "111111"
    code, out = await cli(harness, pki, "delete-user", "--user-id", person.user_id, "--password", wrong)
    assert code == 1 and "payment password is wrong" in out and "Traceback" not in out, out
    password = ("--password", person.payment_password)
    code, out = await cli(harness, pki, "delete-user", "--user-id", person.user_id, *password)
    assert code == 0 and f"Account {person.user_id} closed: its data is erased at the hub (1 query)." in out, out
    code, out = await cli(harness, pki, "list", "--user-id", person.user_id)
    assert code == 1 and "Traceback" not in out, out
