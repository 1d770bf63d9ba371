"""Every RPC of the hub API refuses malformed input with the contract's
status code and a google.rpc.ErrorInfo reason (never a bare status, never a
stack trace, never the offending personal value echoed back). Requests go
through the raw stub so that no client-side check can hide the hub's."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import grpc
import pytest

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.population import Person
from cardlookup.rpc_errors import HUB_DOMAIN, error_info_of
from tests.api.helpers import HubHarness

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
LONG = "a" * 65
HUGE = "9" * 20_000


async def expect(
    call: Any, code: grpc.StatusCode, reason: str, field: str | None = None, secrets: tuple[str, ...] = ()
) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    info = error_info_of(error)
    assert info is not None, f"no ErrorInfo: {error.code()} {error.details()}"
    assert (error.code(), info.reason, info.domain) == (code, reason, HUB_DOMAIN), error.details()
    if field is not None:
        assert info.metadata.get("field") == field, info.metadata
    text = (error.details() or "") + repr(info.metadata)
    assert "Traceback" not in text
    for secret in secrets:
        assert secret not in text
    return info.metadata


def enrolment(person: Person, **changes: str) -> svc.EnrollUserRequest:
    fields = {
        "user_id": person.user_id,
        "full_name": person.full_name,
        "id_number": person.id_number,
        "id_expiry_date": person.id_expiry.isoformat() if person.id_expiry else "",
        "region_code": person.region_code,
        "phone_number": person.phone,
        "payment_password": person.payment_password,
    }
    fields.update(changes)
    return svc.EnrollUserRequest(**fields)


async def test_enrol_refuses_each_malformed_field(harness: HubHarness) -> None:
    stub, person = harness.client.stub, harness.eligible()
    personal = (person.full_name, person.id_number, person.phone)
    wrong_check = person.id_number[:-1] + ("0" if person.id_number[-1] != "0" else "1")
    cases = [
        ({"user_id": ""}, "user_id"),
        ({"user_id": LONG}, "user_id"),
        ({"user_id": "a/b"}, "user_id"),
        ({"user_id": person.user_id + "\n"}, "user_id"),
        ({"full_name": ""}, "full_name"),
        ({"full_name": "张" * 65}, "full_name"),
        ({"full_name": "张\n三"}, "full_name"),
        ({"full_name": "张\x00三"}, "full_name"),
        ({"id_number": wrong_check}, "id_number"),
        ({"id_number": person.id_number[:-1]}, "id_number"),
        ({"id_number": HUGE}, "id_number"),
        ({"id_expiry_date": "2030-02-30"}, "id_expiry_date"),
        ({"id_expiry_date": "20301231"}, "id_expiry_date"),
        ({"id_expiry_date": "2030-W01-1"}, "id_expiry_date"),
        ({"region_code": "999999"}, "region_code"),
        ({"region_code": ""}, "region_code"),
        ({"phone_number": "12345"}, "phone_number"),
        ({"phone_number": person.phone + "0"}, "phone_number"),
        ({"phone_number": "+86" + person.phone}, "phone_number"),
        ({"phone_number": person.phone + "\n"}, "phone_number"),
        ({"id_expiry_date": "2030-12-31\n"}, "id_expiry_date"),
        ({"payment_password": "123456\n"}, "payment_password"),
        ({"payment_password": "12345"}, "payment_password"),
        ({"payment_password": "abcdef"}, "payment_password"),
        ({"payment_password": ""}, "payment_password"),  # required at first enrolment
    ]
    for changes, field in cases:
        await expect(stub.EnrollUser(enrolment(person, **changes)), INVALID, "INVALID_FIELD", field, personal)
    # Nothing was enrolled by any of them.
    await expect(stub.GetUser(svc.GetUserRequest(user_id=person.user_id)), NOT_FOUND, "USER_NOT_FOUND")


async def test_user_rpcs_refuse_bad_and_unknown_ids(harness: HubHarness) -> None:
    stub = harness.client.stub
    for user_id in ("", LONG, "a b", "用户"):
        await expect(stub.GetUser(svc.GetUserRequest(user_id=user_id)), INVALID, "INVALID_FIELD", "user_id")
        await expect(stub.ListBanks(svc.ListBanksRequest(user_id=user_id)), INVALID, "INVALID_FIELD", "user_id")
        await expect(
            stub.StartVerification(svc.StartVerificationRequest(user_id=user_id)), INVALID, "INVALID_FIELD", "user_id"
        )
    await expect(stub.GetUser(svc.GetUserRequest(user_id="nobody")), NOT_FOUND, "USER_NOT_FOUND")
    await expect(stub.ListBanks(svc.ListBanksRequest(user_id="nobody")), NOT_FOUND, "USER_NOT_FOUND")
    await expect(stub.StartVerification(svc.StartVerificationRequest(user_id="nobody")), NOT_FOUND, "USER_NOT_FOUND")


async def test_create_query_refuses_each_malformed_field(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    stub = hub.client.stub
    await hub.enrol(person)
    vid, code = await hub.verify(person)
    version = (await hub.client.list_banks(person.user_id)).consent_text_version
    face = hub.face.attest(person.user_id, vid, hub.clock.now())

    def request(**changes: Any) -> svc.CreateQueryRequest:
        fields: dict[str, Any] = {
            "user_id": person.user_id,
            "request_id": uuid.uuid4().hex,
            "verification_id": vid,
            "sms_code": code,
            "face_attestation": face,
            "consent_text_version": version,
            "bank_codes": ["102", "104"],
        }
        fields.update(changes)
        return svc.CreateQueryRequest(**{k: v for k, v in fields.items() if v is not None})

    invalid_cases = [
        ({"user_id": ""}, "user_id"),
        ({"request_id": ""}, "request_id"),
        ({"request_id": LONG}, "request_id"),
        ({"request_id": "r1\n"}, "request_id"),
        ({"verification_id": ""}, "verification_id"),
        ({"verification_id": HUGE}, "verification_id"),
        ({"verification_id": "not-a-uuid"}, "verification_id"),
        ({"verification_id": vid + "\n"}, "verification_id"),
        ({"sms_code": ""}, "sms_code"),
        ({"sms_code": "12a456"}, "sms_code"),
        ({"sms_code": "1234567"}, "sms_code"),
        ({"sms_code": code + "\n"}, "sms_code"),
        ({"consent_text_version": ""}, "consent_text_version"),
        ({"consent_text_version": HUGE}, "consent_text_version"),
        ({"bank_codes": []}, "bank_codes"),
        ({"bank_codes": ["102", "102"]}, "bank_codes"),
        ({"bank_codes": [""]}, "bank_codes"),
        ({"bank_codes": [HUGE]}, "bank_codes"),
        ({"bank_codes": ["1 2"]}, "bank_codes"),
        ({"bank_codes": [f"{9000 + i}" for i in range(2000)]}, "bank_codes"),
    ]
    for changes, field in invalid_cases:
        await expect(stub.CreateQuery(request(**changes)), INVALID, "INVALID_FIELD", field, (code,))
    meta = await expect(stub.CreateQuery(request(bank_codes=["102", "999"])), INVALID, "BANK_NOT_AVAILABLE")
    assert meta["bank_code"] == "999"
    await expect(
        stub.CreateQuery(request(face_attestation=None)),
        grpc.StatusCode.PERMISSION_DENIED,
        "FACE_ATTESTATION_INVALID",
    )
    await expect(stub.CreateQuery(request(verification_id=str(uuid.uuid4()))), NOT_FOUND, "VERIFICATION_NOT_FOUND")
    await expect(
        stub.CreateQuery(request(consent_text_version="v0")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "CONSENT_VERSION_MISMATCH",
    )
    # None of the refusals used up the verification or reached a bank.
    assert sum(hub.fleet.call_count(c) for c in hub.fleet.codes) == 0
    accepted = await stub.CreateQuery(request())
    assert list(accepted.query.bank_codes) == ["102", "104"]


async def test_query_and_report_names_are_checked(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    stub = hub.client.stub
    await hub.enrol(person)
    qid = str(uuid.uuid4())
    bad_names = [
        "",
        f"users/{person.user_id}",
        f"users/{person.user_id}/queries/not-a-uuid",
        f"users/{person.user_id}/queries/{qid.upper()}",
        f"users/{person.user_id}/queries/{qid}\n",
        f"users//queries/{qid}",
        f"people/{person.user_id}/queries/{qid}",
        f"users/{person.user_id}/queries/{qid}/report",
        f"users/{person.user_id}/queries/{qid}/" + "x" * 5000,
    ]
    for name in bad_names:
        await expect(stub.GetQuery(svc.GetQueryRequest(name=name)), INVALID, "INVALID_FIELD", "name")
        call = stub.WatchQuery(svc.WatchQueryRequest(name=name))
        await expect(_drain(call), INVALID, "INVALID_FIELD", "name")
    for name in ["", f"users/{person.user_id}/queries/{qid}", f"users/{person.user_id}/queries/{qid}/reports"]:
        await expect(
            stub.GetReport(svc.GetReportRequest(name=name, payment_password="123456")), INVALID, "INVALID_FIELD", "name"
        )
    report_name = f"users/{person.user_id}/queries/{qid}/report"
    for password in ("", "12345", "abcdef", "1234567"):
        await expect(
            stub.GetReport(svc.GetReportRequest(name=report_name, payment_password=password)),
            INVALID,
            "INVALID_FIELD",
            "payment_password",
        )
    name = f"users/{person.user_id}/queries/{qid}"
    await expect(stub.GetQuery(svc.GetQueryRequest(name=name)), NOT_FOUND, "QUERY_NOT_FOUND")
    await expect(_drain(stub.WatchQuery(svc.WatchQueryRequest(name=name))), NOT_FOUND, "QUERY_NOT_FOUND")
    await expect(
        stub.GetReport(svc.GetReportRequest(name=report_name, payment_password=person.payment_password)),
        NOT_FOUND,
        "QUERY_NOT_FOUND",
    )
    await expect(stub.GetQuery(svc.GetQueryRequest(name=f"users/nobody/queries/{qid}")), NOT_FOUND, "USER_NOT_FOUND")


async def test_list_queries_checks_parent_page_size_and_token(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    stub = hub.client.stub
    await hub.enrol(person)
    parent = f"users/{person.user_id}"
    for bad in ("", "users/", person.user_id, f"{parent}/queries", f"users/{LONG}"):
        await expect(stub.ListQueries(svc.ListQueriesRequest(parent=bad)), INVALID, "INVALID_FIELD", "parent")
    for size in (-1, 101, 2**31 - 1):
        await expect(
            stub.ListQueries(svc.ListQueriesRequest(parent=parent, page_size=size)),
            INVALID,
            "INVALID_FIELD",
            "page_size",
        )
    naive_time = base64.urlsafe_b64encode(
        json.dumps({"u": person.user_id, "t": "2026-01-01T00:00:00", "q": "x"}).encode()
    ).decode()
    for token in ("bogus", "!!!", "e30=", "eyJ1IjoxfQ==", HUGE, naive_time):
        await expect(
            stub.ListQueries(svc.ListQueriesRequest(parent=parent, page_token=token)),
            INVALID,
            "INVALID_FIELD",
            "page_token",
        )
    await expect(stub.ListQueries(svc.ListQueriesRequest(parent="users/nobody")), NOT_FOUND, "USER_NOT_FOUND")
    assert len((await stub.ListQueries(svc.ListQueriesRequest(parent=parent))).queries) == 0


async def test_unexpected_failures_are_unavailable_without_details(harness: HubHarness) -> None:
    """A fault inside the hub (here: a store that cannot read) answers
    UNAVAILABLE/HUB_UNAVAILABLE with a fixed sentence, not the exception."""
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    await hub.server.db.close()
    meta = await expect(
        hub.client.stub.GetUser(svc.GetUserRequest(user_id=person.user_id)),
        grpc.StatusCode.UNAVAILABLE,
        "HUB_UNAVAILABLE",
        secrets=(person.user_id, "Error"),
    )
    assert meta == {}


async def _drain(call: Any) -> None:
    async for _ in call:
        pass
