"""A deterministic synthetic population: real-name people and their cards at
every bank, generated from a seed.

Banks (bank_sim) serve it, the demo enrols people from it, and tests use it
as ground truth: for any person and any set of banks the expected report is
computable with `expected_answer`. The same seed gives the same people and
cards on every machine and Python version (random.Random seeded by str is
stable), and cards are generated lazily per (bank, person), so a fleet of
1,000 banks costs nothing until a bank is asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from cardlookup.banks import DEFAULT_BANKS, BankInfo
from cardlookup.checksums import id_check_char, luhn_check_digit
from cardlookup.regions import DEFAULT_OPEN_REGIONS

DEFAULT_SEED = 20211220
DEFAULT_SIZE = 200

CardKind = Literal["debit", "credit"]
UnlistedReason = Literal["NO_PHONE_ON_FILE", "ID_DOCUMENT_EXPIRED", "CARD_NOT_PRESENT_DISABLED"]
UNLISTED_REASONS: tuple[UnlistedReason, ...] = (
    "NO_PHONE_ON_FILE",
    "ID_DOCUMENT_EXPIRED",
    "CARD_NOT_PRESENT_DISABLED",
)
"""The R13 reasons in the contract's enum order (the order of summary entries)."""
R13_PRECEDENCE: tuple[UnlistedReason, ...] = (
    "ID_DOCUMENT_EXPIRED",
    "NO_PHONE_ON_FILE",
    "CARD_NOT_PRESENT_DISABLED",
)
"""One card, one reason (R13, docs/bank-integration.md "Which cards are
listed"): a card with several conditions counts under the first of these that
applies, the order in which its holder has to clear them at the bank."""


def counted_reason(conditions: frozenset[UnlistedReason]) -> UnlistedReason | None:
    """The one reason a card with these R13 conditions is counted under, or
    None for a card without any (a listed card)."""
    return next((r for r in R13_PRECEDENCE if r in conditions), None)


R13_TEST_CUSTOMER = ("多因测试", "110101190001029989")
"""(name, ID number) of a test customer every simulated bank holds, for the
conformance check list.unlisted_reason_precedence: two unlisted cards, one
with all three R13 conditions and one without a phone and with card-not-
present disabled, so a correct bank counts one ID_DOCUMENT_EXPIRED and one
NO_PHONE_ON_FILE. Born 1900-01-02: not an app user, nobody's real number."""
R13_TEST_CONDITIONS: tuple[frozenset[UnlistedReason], ...] = (
    frozenset(UNLISTED_REASONS),
    frozenset({"NO_PHONE_ON_FILE", "CARD_NOT_PRESENT_DISABLED"}),
)

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国志强海燕晓东雪梅文博子涵浩然欣怡宇轩梓萱"  # noqa: E501
_NOT_OPEN_REGIONS = ("440000", "320000", "510000", "370000")
_PHONE_PREFIXES = ("130", "131", "135", "136", "138", "139", "150", "151", "158", "176", "186", "188", "199")


@dataclass(frozen=True)
class Person:
    user_id: str
    full_name: str
    id_number: str
    id_expiry: dt.date | None
    """None: a long-term (长期) document."""
    region_code: str
    phone: str
    payment_password: str
    """The 6-digit app payment password the demo and tests enrol."""

    def id_valid_on(self, day: dt.date) -> bool:
        return self.id_expiry is None or self.id_expiry >= day

    def enrolment(self) -> dict[str, Any]:
        """This person's EnrollUser arguments, as both app clients take them:
        `client.enroll_user(**person.enrolment())`."""
        return {
            "user_id": self.user_id,
            "full_name": self.full_name,
            "id_number": self.id_number,
            "id_expiry_date": self.id_expiry,
            "region_code": self.region_code,
            "phone_number": self.phone,
            "payment_password": self.payment_password,
        }


@dataclass(frozen=True)
class Card:
    bank_code: str
    number: str
    """The full card number: only a bank ever holds it."""
    kind: CardKind
    card_ref: str
    conditions: frozenset[UnlistedReason] = frozenset()
    """The R13 conditions the bank's records hold for this card (several may
    hold at once); empty for a card the bank lists."""

    @property
    def unlisted_reason(self) -> UnlistedReason | None:
        """The one reason the card is counted under (R13); None if listed."""
        return counted_reason(self.conditions)

    @property
    def first_four(self) -> str:
        return self.number[:4]

    @property
    def last_four(self) -> str:
        return self.number[-4:]


@dataclass(frozen=True)
class ExpectedAnswer:
    """What a correct bank streams for one subject."""

    bank_code: str
    listed: tuple[Card, ...]
    unlisted: dict[str, int]
    """Count of unlisted cards by reason; reasons with zero are absent."""

    @property
    def debit_count(self) -> int:
        return sum(1 for c in self.listed if c.kind == "debit")

    @property
    def credit_count(self) -> int:
        return sum(1 for c in self.listed if c.kind == "credit")


class Population:
    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        size: int = DEFAULT_SIZE,
        banks: tuple[BankInfo, ...] = DEFAULT_BANKS,
    ) -> None:
        if size < 1:
            raise ValueError("a population needs at least one person")
        self.seed = seed
        self.size = size
        self._banks = {b.code: b for b in banks}

    @cached_property
    def people(self) -> tuple[Person, ...]:
        rng = random.Random(f"people:{self.seed}")
        regions = sorted(DEFAULT_OPEN_REGIONS)
        seen: set[str] = set()
        people: list[Person] = []
        while len(people) < self.size:
            i = len(people)
            region = rng.choice(_NOT_OPEN_REGIONS) if rng.random() < 0.12 else rng.choice(regions)
            birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 20000))
            first17 = f"{region[:2]}0101{birth:%Y%m%d}{rng.randrange(0, 1000):03d}"
            id_number = first17 + id_check_char(first17)
            if id_number in seen:
                continue
            seen.add(id_number)
            roll = rng.random()
            expiry = (
                None
                if roll < 0.15
                else dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 6))
                if roll < 0.25  # expired by 2025
                else dt.date(2027, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 15))
            )
            name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))
            people.append(
                Person(
                    user_id=f"u{self.seed % 1000:03d}{i:06d}",
                    full_name=name,
                    id_number=id_number,
                    id_expiry=expiry,
                    region_code=region,
                    phone=rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(0, 10**8):08d}",
                    payment_password=f"{rng.randrange(0, 10**6):06d}",
                )
            )
        return tuple(people)

    @cached_property
    def _by_id_number(self) -> dict[str, Person]:
        return {p.id_number: p for p in self.people}

    @cached_property
    def _by_user_id(self) -> dict[str, Person]:
        return {p.user_id: p for p in self.people}

    def person(self, user_id: str) -> Person:
        return self._by_user_id[user_id]

    def find_by_id_number(self, id_number: str) -> Person | None:
        """A person of the population, or None. The R13 test customer is a
        bank record only: not a person here (cards_at knows it)."""
        return self._by_id_number.get(id_number)

    def holder_name(self, id_number: str) -> str | None:
        """The name the banks hold for this ID number: a person's, the R13 test
        customer's, or None for someone no bank knows."""
        if id_number == R13_TEST_CUSTOMER[1]:
            return R13_TEST_CUSTOMER[0]
        person = self._by_id_number.get(id_number)
        return None if person is None else person.full_name

    def cards_at(self, bank_code: str, id_number: str) -> tuple[Card, ...]:
        """Every card the bank holds for this ID number, listed or not, in the
        order the bank streams them. Unknown people and banks hold none."""
        bank = self._banks.get(bank_code)
        if bank is not None and id_number == R13_TEST_CUSTOMER[1]:
            return self._test_customer_cards(bank)
        if bank is None or id_number not in self._by_id_number:
            return ()
        rng = random.Random(f"cards:{self.seed}:{bank_code}:{id_number}")
        roll = rng.random()
        count = 0 if roll < 0.5 else 1 if roll < 0.75 else 2 if roll < 0.88 else 3 if roll < 0.96 else rng.randint(4, 6)
        cards = []
        for _ in range(count):
            kind: CardKind = "credit" if rng.random() < 0.35 else "debit"
            prefix = rng.choice(bank.credit_bins if kind == "credit" else bank.debit_bins)
            length = 16 if kind == "credit" else rng.choice((16, 19))
            body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
            number = body + luhn_check_digit(body)
            reason: UnlistedReason | None = rng.choice(UNLISTED_REASONS) if rng.random() < 0.12 else None
            ref = hashlib.sha256(f"ref:{self.seed}:{bank_code}:{number}".encode()).hexdigest()[:24]
            cards.append(Card(bank_code, number, kind, f"c{ref}", _conditions(reason, ref)))
        return tuple(cards)

    def _test_customer_cards(self, bank: BankInfo) -> tuple[Card, ...]:
        cards = []
        for i, conditions in enumerate(R13_TEST_CONDITIONS):
            body = bank.debit_bins[0] + f"{i:09d}"
            number = body + luhn_check_digit(body)
            ref = hashlib.sha256(f"ref:{self.seed}:{bank.code}:{number}".encode()).hexdigest()[:24]
            cards.append(Card(bank.code, number, "debit", f"c{ref}", conditions))
        return tuple(cards)

    def expected_answer(self, bank_code: str, id_number: str) -> ExpectedAnswer:
        cards = self.cards_at(bank_code, id_number)
        unlisted: Counter[str] = Counter(c.unlisted_reason for c in cards if c.unlisted_reason is not None)
        return ExpectedAnswer(
            bank_code=bank_code,
            listed=tuple(c for c in cards if c.unlisted_reason is None),
            unlisted=dict(unlisted),
        )

    def eligible_people(self, on: dt.date, open_regions: frozenset[str] = DEFAULT_OPEN_REGIONS) -> list[Person]:
        """People who may query on `on`: open region, valid ID (R1, R2)."""
        return [p for p in self.people if p.region_code in open_regions and p.id_valid_on(on)]

    def demo_person(self, on: dt.date) -> Person:
        """An eligible person with cards at several of the banks, and at least
        one unlisted card, for demos."""
        codes = list(self._banks)
        best = max(
            self.eligible_people(on),
            key=lambda p: (
                any(c.unlisted_reason for b in codes for c in self.cards_at(b, p.id_number)),
                sum(len(self.cards_at(b, p.id_number)) for b in codes),
            ),
        )
        return best


def _conditions(reason: UnlistedReason | None, card_ref: str) -> frozenset[UnlistedReason]:
    """The R13 conditions of a generated card: the drawn reason, and for about
    a third of unlisted cards one or two more, so that the precedence rule
    matters in the ground truth. Drawn from the card's own seed so that which
    cards are listed does not depend on it."""
    if reason is None:
        return frozenset()
    rng = random.Random(f"conditions:{card_ref}")
    extra = [r for r in UNLISTED_REASONS if r != reason and rng.random() < 0.2]
    return frozenset((reason, *extra))
