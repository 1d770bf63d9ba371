"""ListCards over every data source: the masked answer of each test
customer, retries, strangers, malformed requests and every consent step."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from typing import Any

import grpc
import pytest

from bank_kit.contract import card_directory_pb2 as pb
from bank_kit.tests.conftest import Bench, customers, refusal

# The guide's order (docs/bank-integration.md, "Which cards are listed (R13)").
PRECEDENCE = ("ID_DOCUMENT_EXPIRED", "NO_PHONE_ON_FILE", "CARD_NOT_PRESENT_DISABLED")
KINDS = {"debit": pb.CARD_TYPE_DEBIT, "credit": pb.CARD_TYPE_CREDIT}
STRANGER_ID = "110101190001019991"  # a valid ID number born 1900-01-01: in no test data


def people() -> list[tuple[str, str]]:
    return [(c["full_name"], id_number) for id_number, c in customers().items()]


def with_listed_cards() -> tuple[str, str]:
    return next(p for p in people() if expected(p)[0])


def expected(who: tuple[str, str]) -> tuple[list[tuple[Any, str, str, int]], dict[str, int]]:
    """What the bank must answer for a test customer: the masked listed cards
    in file order and the unlisted counts, from the JSON alone. A closed card
    is left out; a frozen or lost one is listed like an active one."""
    held = [k for k in customers()[who[1]]["cards"] if k.get("status", "active") != "closed"]
    listed = [
        (KINDS[k["kind"]], k["number"][:4], k["number"][-4:], len(k["number"])) for k in held if not k.get("conditions")
    ]
    unlisted = Counter(next(r for r in PRECEDENCE if r in k["conditions"]) for k in held if k.get("conditions"))
    return listed, dict(unlisted)


def masked(answer: list[pb.ListCardsResponse]) -> tuple[list[tuple[Any, str, str, int]], dict[str, int]]:
    *cards, last = answer
    assert all(m.WhichOneof("item") == "card" for m in cards) and last.WhichOneof("item") == "summary"
    summary = last.summary
    listed = [(m.card.card_type, m.card.first_four, m.card.last_four, m.card.number_length) for m in cards]
    assert summary.listed_card_count == len(cards)
    assert summary.debit_card_count == sum(c[0] == pb.CARD_TYPE_DEBIT for c in listed)
    assert summary.credit_card_count == sum(c[0] == pb.CARD_TYPE_CREDIT for c in listed)
    unlisted = {
        pb.UnlistedReason.Name(u.reason).removeprefix("UNLISTED_REASON_"): u.card_count for u in summary.unlisted
    }
    return listed, unlisted


def test_the_test_data_covers_what_the_tests_need() -> None:
    statuses = {k.get("status", "active") for c in customers().values() for k in c["cards"]}
    assert {"active", "closed"} <= statuses
    assert any(len(expected(p)[1]) > 1 for p in people()), "a customer with cards under two R13 reasons"


@pytest.mark.parametrize("who", people())
def test_each_customer_gets_their_masked_cards_then_the_summary(bench: Bench, who: tuple[str, str]) -> None:
    answer = list(bench.cards.ListCards(bench.list_request(who)))
    assert masked(answer) == expected(who)
    numbers = {k["number"] for k in customers()[who[1]]["cards"]}
    for message in answer:
        assert not any(n.encode() in message.SerializeToString() for n in numbers)
        if message.WhichOneof("item") == "card":
            assert message.card.card_ref.isalnum() and len(message.card.card_ref) <= 64


def test_a_retry_and_a_new_query_get_the_same_cards(bench: Bench) -> None:
    who = with_listed_cards()
    request = bench.list_request(who)
    first = list(bench.cards.ListCards(request))
    assert list(bench.cards.ListCards(request)) == first == list(bench.cards.ListCards(bench.list_request(who)))
    refs = [m.card.card_ref for m in first if m.WhichOneof("item") == "card"]
    assert len(set(refs)) == len(refs)


def test_a_stranger_or_a_wrong_name_gets_an_empty_answer(bench: Bench) -> None:
    name, id_number = with_listed_cards()
    empty = [pb.ListCardsResponse(summary=pb.ListCardsSummary())]
    assert list(bench.cards.ListCards(bench.list_request((name, STRANGER_ID)))) == empty
    assert list(bench.cards.ListCards(bench.list_request(("另一个人", id_number)))) == empty


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("full_name", "{name}\n"),
        ("id_number", "{id_number}\n"),
        ("full_name", ""),
        ("full_name", " {name}"),
        ("id_number", "{id_number_bad_check}"),
        ("query_id", "{query_id_upper}"),
    ],
)
def test_malformed_requests_are_refused_not_repaired(bench: Bench, field: str, value: str) -> None:
    name, id_number = with_listed_cards()
    bad_check = id_number[:17] + ("0" if id_number[17] != "0" else "1")
    query_id = str(uuid.uuid4())
    text = value.format(name=name, id_number=id_number, id_number_bad_check=bad_check, query_id_upper=query_id.upper())
    who = (text, id_number) if field == "full_name" else (name, text) if field == "id_number" else (name, id_number)
    request = bench.list_request(who, text if field == "query_id" else query_id)
    assert refusal(lambda: list(bench.cards.ListCards(request))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
    )


def _no_expiry(consent: pb.Consent) -> None:
    consent.ClearField("expire_time")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"key_id": "someone-else"}, "CONSENT_UNKNOWN_KEY"),
        ({"scope": pb.CONSENT_SCOPE_UNSPECIFIED}, "CONSENT_SCOPE_INVALID"),
        ({"scope": pb.CONSENT_SCOPE_OPEN_CARD_CASE}, "CONSENT_SCOPE_INVALID"),
        ({"bank": "998"}, "CONSENT_WRONG_BANK"),
        ({"edit": lambda c: setattr(c, "query_id", str(uuid.uuid4()))}, "CONSENT_WRONG_QUERY"),
        ({"edit": lambda c: setattr(c, "subject_digest", bytes(32))}, "CONSENT_SUBJECT_MISMATCH"),
        ({"edit": _no_expiry}, "CONSENT_MALFORMED"),
        ({"issued": dt.timedelta(hours=1)}, "CONSENT_NOT_YET_VALID"),
        ({"expires": dt.timedelta(seconds=-1)}, "CONSENT_EXPIRED"),
    ],
)
def test_a_wrong_consent_is_refused(bench: Bench, changes: dict[str, Any], reason: str) -> None:
    request = bench.list_request(with_listed_cards(), **changes)
    assert refusal(lambda: list(bench.cards.ListCards(request))) == (grpc.StatusCode.PERMISSION_DENIED, reason)


def test_a_tampered_consent_is_refused(bench: Bench) -> None:
    request = bench.list_request(with_listed_cards())
    request.consent.signature = bytes([request.consent.signature[0] ^ 1]) + request.consent.signature[1:]
    assert refusal(lambda: list(bench.cards.ListCards(request))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_SIGNATURE_INVALID",
    )


def test_every_consent_verdict_is_audited_without_personal_data(bench: Bench) -> None:
    who = with_listed_cards()
    accepted = bench.list_request(who)
    list(bench.cards.ListCards(accepted))
    wrong_bank = bench.list_request(who, bank="998")
    refusal(lambda: list(bench.cards.ListCards(wrong_bank)))
    text = bench.audit_path.read_text(encoding="utf-8")
    assert who[0] not in text and who[1] not in text
    assert oct(bench.audit_path.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(e["query_id"], e["verdict"], e["reason"]) for e in lines] == [
        (accepted.query_id, "accepted", None),
        (wrong_bank.query_id, "refused", "CONSENT_WRONG_BANK"),
    ]
    assert {(e["method"], e["scope"], e["key_id"], e["consent_text_version"]) for e in lines} == {
        ("ListCards", "CONSENT_SCOPE_LIST_MASKED_CARDS", "kit-test-key", "2022-03-01")
    }
