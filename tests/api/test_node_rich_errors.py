"""Issue 18 item 1, across languages: a Node.js app backend (@grpc/grpc-js,
tests/node_bank/decode_status.js) calls a real hub over mTLS and decodes
each refusal's `grpc-status-details-bin` with the google/rpc protos the
repository ships, finding ErrorInfo, BadRequest and RetryInfo where
docs/app-backend.md says they are."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from cardlookup.pki import PkiPaths
from tests.api.helpers import HubHarness

NODE_DIR = Path(__file__).resolve().parents[1] / "node_bank"
DOC = (Path(__file__).resolve().parents[2] / "docs" / "app-backend.md").read_text()

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules").is_dir(),
    reason="needs node and tests/node_bank/node_modules (npm ci)",
)


async def node_calls(pki: PkiPaths, port: int, plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "decode_status.js"),
        "--target",
        f"127.0.0.1:{port}",
        "--ca",
        str(pki.ca_cert),
        "--cert",
        str(pki.cert("app-backend")),
        "--key",
        str(pki.key("app-backend")),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(json.dumps(plan).encode())
    assert process.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out)
    return results


def by_type(details: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["type"]: d for d in details}


def seconds(duration: dict[str, Any]) -> float:
    return int(duration.get("seconds", 0)) + int(duration.get("nanos", 0)) / 1e9


async def test_a_node_client_finds_error_info_bad_request_and_retry_info(harness: HubHarness, pki: PkiPaths) -> None:
    in_cooldown, other = harness.eligible(0), harness.eligible(1)
    await harness.enrol(in_cooldown)
    await harness.ready_query(in_cooldown)
    await harness.enrol(other)
    await harness.client.start_verification(other.user_id)

    results = await node_calls(
        pki,
        harness.server.port,
        [
            {"method": "GetUser", "request": {"user_id": "not a valid id!"}},
            {"method": "StartVerification", "request": {"user_id": other.user_id}},
            {"method": "StartVerification", "request": {"user_id": in_cooldown.user_id}},
            {"method": "GetUser", "request": {"user_id": "nobody-enrolled-here"}},
            {"method": "GetUser", "raw_hex": "ffffffff0f"},  # not a protobuf message
        ],
    )
    invalid, rate_limited, cooldown, not_found, malformed = results

    assert invalid["code"] == "INVALID_ARGUMENT"
    details = by_type(invalid["details"])
    assert invalid["details"][0]["type"] == "google.rpc.ErrorInfo"  # ErrorInfo first, as documented
    info = details["google.rpc.ErrorInfo"]
    assert (info["reason"], info["domain"]) == ("INVALID_FIELD", "cardlookup.hub.v1")
    assert info["metadata"] == {"field": "user_id"}
    assert all(by_type(r["details"])["google.rpc.ErrorInfo"]["reason_in_contract"] for r in results)
    violations = details["google.rpc.BadRequest"]["field_violations"]
    assert [v["field"] for v in violations] == ["user_id"] and violations[0]["description"]
    assert "google.rpc.RetryInfo" not in details

    for result, reason, code, bound in (
        (rate_limited, "SMS_RATE_LIMITED", "RESOURCE_EXHAUSTED", harness.server.config.timings.sms_resend_interval),
        (cooldown, "COOLDOWN_ACTIVE", "FAILED_PRECONDITION", harness.server.config.timings.cooldown),
    ):
        assert result["code"] == code, result
        details = by_type(result["details"])
        info = details["google.rpc.ErrorInfo"]
        assert info["reason"] == reason
        retry_time = dt.datetime.fromisoformat(info["metadata"]["retry_time"])
        delay = seconds(details["google.rpc.RetryInfo"]["retry_delay"])
        # retry_delay leads from the refusal (the hub's clock) to retry_time.
        assert 0 < delay <= bound.total_seconds() + 1
        assert abs((harness.clock.now() + dt.timedelta(seconds=delay) - retry_time).total_seconds()) < 1
        assert "google.rpc.BadRequest" not in details

    assert malformed["code"] == "INVALID_ARGUMENT"
    assert by_type(malformed["details"])["google.rpc.ErrorInfo"]["reason"] == "MALFORMED_REQUEST"

    assert not_found["code"] == "NOT_FOUND"
    assert [d["type"] for d in not_found["details"]] == ["google.rpc.ErrorInfo"]  # no other detail


def test_the_docs_name_the_details_where_the_hub_sends_them() -> None:
    from hub.api.errors import FIELD_VIOLATION_REASONS, RETRY_INFO_REASONS

    table = dict(re.findall(r"^\| `google\.rpc\.(\w+)` \| ([^|]*)\|", DOC, re.M))
    assert set(re.findall(r"`(\w+)`", table["BadRequest"])) == set(FIELD_VIOLATION_REASONS)
    assert set(re.findall(r"`(\w+)`", table["RetryInfo"])) == set(RETRY_INFO_REASONS)
    assert "tests/api/test_node_rich_errors.py" in DOC
