from __future__ import annotations

import datetime as dt

from cardlookup.banks import DEFAULT_BANK_CODES, bank_by_code, bank_fleet
from cardlookup.checksums import is_luhn_valid, is_valid_id_number
from cardlookup.population import Population
from cardlookup.regions import DEFAULT_OPEN_REGIONS


def test_same_seed_same_people_and_cards() -> None:
    a, b = Population(seed=7, size=50), Population(seed=7, size=50)
    assert a.people == b.people
    person = a.people[3]
    assert all(a.cards_at(c, person.id_number) == b.cards_at(c, person.id_number) for c in DEFAULT_BANK_CODES)
    assert Population(seed=8, size=50).people != a.people


def test_people_are_valid_and_unique(population: Population) -> None:
    ids = [p.id_number for p in population.people]
    assert len(set(ids)) == len(ids)
    assert len({p.user_id for p in population.people}) == len(ids)
    assert all(is_valid_id_number(i) for i in ids)
    assert all(len(p.phone) == 11 and p.phone.startswith("1") for p in population.people)
    assert all(len(p.payment_password) == 6 and p.payment_password.isdigit() for p in population.people)


def test_population_covers_every_rule_case(population: Population) -> None:
    day = dt.date(2026, 1, 5)
    assert any(p.region_code not in DEFAULT_OPEN_REGIONS for p in population.people)
    assert any(not p.id_valid_on(day) for p in population.people)
    assert any(p.id_expiry is None for p in population.people)
    reasons = {
        c.unlisted_reason
        for p in population.people
        for code in DEFAULT_BANK_CODES
        for c in population.cards_at(code, p.id_number)
    }
    assert reasons == {None, "NO_PHONE_ON_FILE", "ID_DOCUMENT_EXPIRED", "CARD_NOT_PRESENT_DISABLED"}


def test_cards_carry_the_issuers_bins_and_valid_digits(population: Population) -> None:
    for person in population.people[:60]:
        for code in DEFAULT_BANK_CODES:
            bank = bank_by_code(code)
            assert bank is not None
            for card in population.cards_at(code, person.id_number):
                assert is_luhn_valid(card.number)
                bins = bank.credit_bins if card.kind == "credit" else bank.debit_bins
                assert card.number[:6] in bins
                assert len(card.number) in (16, 19)


def test_expected_answer_splits_listed_and_unlisted(population: Population) -> None:
    person = population.demo_person(dt.date(2026, 1, 5))
    total_listed = total_unlisted = 0
    for code in DEFAULT_BANK_CODES:
        cards = population.cards_at(code, person.id_number)
        expected = population.expected_answer(code, person.id_number)
        assert expected.debit_count + expected.credit_count == len(expected.listed)
        assert len(expected.listed) + sum(expected.unlisted.values()) == len(cards)
        total_listed += len(expected.listed)
        total_unlisted += sum(expected.unlisted.values())
    assert total_listed >= 5 and total_unlisted >= 1


def test_unknown_people_and_banks_hold_no_cards(population: Population) -> None:
    assert population.cards_at("102", "11010519491231002X") == ()
    assert population.cards_at("999", population.people[0].id_number) == ()


def test_synthetic_fleet_codes_are_distinct() -> None:
    fleet = bank_fleet(1000)
    assert len({b.code for b in fleet}) == 1000
    assert [b.code for b in fleet[:16]] == list(DEFAULT_BANK_CODES)
    big = Population(size=5, banks=fleet)
    assert any(big.cards_at(b.code, big.people[0].id_number) for b in fleet[16:])
