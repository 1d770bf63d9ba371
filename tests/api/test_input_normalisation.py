"""Issue 9 item 3: one rule for the values the app backend sends. The whole
value must match and nothing is stripped, so a trailing newline (or
surrounding spaces) is refused, never silently repaired."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from cardlookup.checksums import is_valid_id_number
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.rpc_errors import error_info_of
from hub.identity import validation
from hub.identity.errors import RuleViolation
from tests.api.helpers import HubHarness, refused

GOOD_ID = "11010519491231002X"


@pytest.mark.parametrize(
    ("check", "value", "field"),
    [
        (validation.full_name, "张三\n", "full_name"),
        (validation.full_name, " 张三", "full_name"),
        (validation.full_name, "张三 ", "full_name"),
        (validation.id_number, GOOD_ID + "\n", "id_number"),
        (validation.id_number, " " + GOOD_ID, "id_number"),
        (validation.phone_number, "13812345678\n", "phone_number"),
        (validation.six_digits, "123456\n", "sms_code"),
        (validation.query_id, "00000000-0000-0000-0000-000000000000\n", "name"),
    ],
)
def test_item3_surrounding_whitespace_is_refused_not_stripped(check: object, value: str, field: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        if check is validation.six_digits:
            validation.six_digits(value, field)
        else:
            check(value)  # type: ignore[operator]
    assert caught.value.reason == "INVALID_FIELD" and caught.value.metadata["field"] == field


def test_item3_the_id_checksum_needs_the_whole_value() -> None:
    assert is_valid_id_number(GOOD_ID)
    assert not is_valid_id_number(GOOD_ID + "\n")
    assert validation.id_number(GOOD_ID.lower()) == GOOD_ID  # the only normalisation


def test_item3_no_dollar_anchored_pattern_in_the_hub(repo_root: Path) -> None:
    """`$` matches before a trailing newline; the hub uses fullmatch instead."""
    offenders = []
    for path in [*(repo_root / "hub").rglob("*.py"), repo_root / "cardlookup" / "checksums.py"]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"re\.compile\(r?[\"'].*\$[\"']", line):
                offenders.append(f"{path.name}:{n}")
    assert offenders == []


async def test_item3_enrolment_with_a_trailing_newline_is_refused(harness: HubHarness) -> None:
    person = harness.eligible()
    for change in ({"full_name": person.full_name + "\n"}, {"id_number": person.id_number + "\n"}):
        fields = {
            "user_id": person.user_id,
            "full_name": person.full_name,
            "id_number": person.id_number,
            "id_expiry_date": person.id_expiry.isoformat() if person.id_expiry else "",
            "region_code": person.region_code,
            "phone_number": person.phone,
            "payment_password": person.payment_password,
            **change,
        }
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # the raw stub: no client-side check
            await harness.client.stub.EnrollUser(svc.EnrollUserRequest(**fields))
        info = error_info_of(caught.value)
        assert info is not None and info.reason == "INVALID_FIELD"
        assert info.metadata["field"] == next(iter(change))
    await refused("USER_NOT_FOUND", harness.client.get_user(person.user_id))
