"""OpenCardCase over every data source: a case for a listed card, once per
(query, card); the case consent's scope and card; an unknown card."""

from __future__ import annotations

import grpc

from bank_kit.contract import card_directory_pb2 as pb
from bank_kit.tests.conftest import Bench, refusal
from bank_kit.tests.test_list_cards import with_listed_cards


def listed_ref(bench: Bench) -> tuple[str, str]:
    """(query id, card_ref) of a card the bank listed."""
    request = bench.list_request(with_listed_cards())
    first = next(iter(bench.cards.ListCards(request)))
    return request.query_id, first.card.card_ref


def test_a_case_is_opened_once_per_query_and_card(bench: Bench) -> None:
    who = with_listed_cards()
    query_id, card_ref = listed_ref(bench)
    opened = bench.cases.OpenCardCase(bench.case_request(who, query_id, card_ref))
    assert opened.case_reference and opened.status == pb.CARD_CASE_STATUS_RECEIVED
    assert opened.next_step and opened.next_step_english
    again = bench.cases.OpenCardCase(bench.case_request(who, query_id, card_ref))
    assert again == opened


def test_a_case_consent_must_be_for_cases_and_for_this_card(bench: Bench) -> None:
    who = with_listed_cards()
    query_id, card_ref = listed_ref(bench)
    list_scope = bench.case_request(who, query_id, card_ref, scope=pb.CONSENT_SCOPE_LIST_MASKED_CARDS)
    other_card = bench.case_request(who, query_id, card_ref, consent_card="another-card")
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert refusal(lambda: bench.cases.OpenCardCase(list_scope)) == (denied, "CONSENT_SCOPE_INVALID")
    assert refusal(lambda: bench.cases.OpenCardCase(other_card)) == (denied, "CONSENT_CARD_MISMATCH")


def test_a_card_the_subject_does_not_hold_is_not_found(bench: Bench) -> None:
    who = with_listed_cards()
    query_id, _ = listed_ref(bench)
    request = bench.case_request(who, query_id, "no-such-card")
    assert refusal(lambda: bench.cases.OpenCardCase(request)) == (grpc.StatusCode.NOT_FOUND, "CARD_NOT_FOUND")


def test_a_malformed_card_ref_or_kind_is_refused(bench: Bench) -> None:
    who = with_listed_cards()
    query_id, card_ref = listed_ref(bench)
    bad_ref = bench.case_request(who, query_id, "not a ref!")
    no_kind = bench.case_request(who, query_id, card_ref)
    no_kind.kind = pb.CARD_CASE_KIND_UNSPECIFIED
    invalid = (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert refusal(lambda: bench.cases.OpenCardCase(bad_ref)) == invalid
    assert refusal(lambda: bench.cases.OpenCardCase(no_kind)) == invalid
