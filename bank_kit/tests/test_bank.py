"""The kit's bank in process, with pytest-grpc: a real grpcio server on a
local port hosting the synchronous servicer, called through a stub. Fast (no
TLS): the caller check and mTLS are covered by the conformance suite over
real mTLS (README.md, "Go-live gate")."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_status import rpc_status

from bank_kit.bank import Bank, Records, subject_digest
from cardlookup.bank.v1 import card_directory_pb2 as pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as pb_grpc

BANK = "102"
KEY_ID = "hub-consent-test-1"
SIGNER = Ed25519PrivateKey.generate()
RECORDS = Records.from_json(Path(__file__).resolve().parents[1] / "example_records.json")
ZHANG = ("张三", "310101199003071230")
R13_CUSTOMER = ("多因测试", "110101190001029989")


@pytest.fixture(scope="module")
def grpc_add_to_server() -> Any:
    return pb_grpc.add_CardDirectoryServiceServicer_to_server


@pytest.fixture(scope="module")
def grpc_servicer() -> Bank:
    return Bank(BANK, RECORDS, {KEY_ID: SIGNER.public_key()}, b"test-card-ref-secret")


@pytest.fixture(scope="module")
def grpc_stub_cls() -> Any:
    return pb_grpc.CardDirectoryServiceStub


def request(
    who: tuple[str, str] = ZHANG, *, bank: str = BANK, scope: int = 1, expire_in: float = 3600, key_id: str = KEY_ID
) -> pb.ListCardsRequest:
    name, id_number = who
    query_id = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC)
    consent = pb.Consent(
        query_id=query_id,
        bank_code=bank,
        subject_digest=subject_digest(query_id, id_number, name),
        scope=scope,  # type: ignore[arg-type]
    )
    consent.issue_time.FromDatetime(now - dt.timedelta(minutes=1))
    consent.expire_time.FromDatetime(now + dt.timedelta(seconds=expire_in))
    payload = consent.SerializeToString()
    return pb.ListCardsRequest(
        query_id=query_id,
        subject=pb.Subject(full_name=name, id_number=id_number),
        consent=pb.SignedConsent(consent=payload, signature=SIGNER.sign(payload), key_id=key_id),
    )


def refusal(stub: Any, req: pb.ListCardsRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ListCards(req))
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]  # the error is the call
    assert status is not None, "a refusal carries google.rpc.Status"
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.domain == "cardlookup.bank.v1"
    return caught.value.code(), info.reason


def test_a_customer_gets_masked_cards_then_the_summary(grpc_stub: Any) -> None:
    *cards, last = list(grpc_stub.ListCards(request()))
    assert [m.WhichOneof("item") for m in cards] == ["card"] * 3 and last.WhichOneof("item") == "summary"
    for m in cards:
        assert len(m.card.first_four) == len(m.card.last_four) == 4 and m.card.number_length in (16, 19)
        assert m.card.card_ref.isalnum() and m.card.first_four not in m.card.card_ref
    s = last.summary
    assert (s.listed_card_count, s.debit_card_count, s.credit_card_count) == (3, 2, 1)
    assert [(u.reason, u.card_count) for u in s.unlisted] == [(pb.UNLISTED_REASON_NO_PHONE_ON_FILE, 1)]


def test_a_retry_and_a_new_query_get_the_same_cards(grpc_stub: Any) -> None:
    req = request()
    assert list(grpc_stub.ListCards(req)) == list(grpc_stub.ListCards(req)) == list(grpc_stub.ListCards(request()))


def test_one_card_one_reason_by_precedence(grpc_stub: Any) -> None:
    (only,) = list(grpc_stub.ListCards(request(R13_CUSTOMER)))
    assert {pb.UnlistedReason.Name(u.reason): u.card_count for u in only.summary.unlisted} == {
        "UNLISTED_REASON_ID_DOCUMENT_EXPIRED": 1,
        "UNLISTED_REASON_NO_PHONE_ON_FILE": 1,
    }


def test_a_stranger_or_a_wrong_name_gets_an_empty_answer(grpc_stub: Any) -> None:
    for who in (("李四", "110101190001019991"), ("李四", ZHANG[1])):
        assert list(grpc_stub.ListCards(request(who))) == [pb.ListCardsResponse(summary=pb.ListCardsSummary())]


@pytest.mark.parametrize(
    ("who", "field"),
    [
        (("张三\n", ZHANG[1]), "full_name"),
        ((ZHANG[0], ZHANG[1] + "\n"), "id_number"),
        (("", ZHANG[1]), "full_name"),
        ((ZHANG[0], "310101199003071231"), "id_number"),
    ],
)
def test_malformed_requests_are_refused_not_repaired(grpc_stub: Any, who: tuple[str, str], field: str) -> None:
    assert refusal(grpc_stub, request(who)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"key_id": "someone-else"}, "CONSENT_UNKNOWN_KEY"),
        ({"scope": 0}, "CONSENT_SCOPE_INVALID"),
        ({"bank": "103"}, "CONSENT_WRONG_BANK"),
        ({"expire_in": -60}, "CONSENT_EXPIRED"),
    ],
)
def test_a_wrong_consent_is_refused(grpc_stub: Any, changes: dict[str, Any], reason: str) -> None:
    assert refusal(grpc_stub, request(**changes)) == (grpc.StatusCode.PERMISSION_DENIED, reason)


def test_a_tampered_consent_is_refused(grpc_stub: Any) -> None:
    req = request()
    req.consent.signature = bytes([req.consent.signature[0] ^ 1]) + req.consent.signature[1:]
    assert refusal(grpc_stub, req) == (grpc.StatusCode.PERMISSION_DENIED, "CONSENT_SIGNATURE_INVALID")
