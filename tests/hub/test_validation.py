"""Bank answer validation: each contract violation has its reason."""

from __future__ import annotations

import pytest

from cardlookup.bank.v1 import card_directory_pb2 as pb
from cardlookup.checksums import luhn_check_digit
from hub.fanout.validation import MAX_CARDS, AnswerRejected, AnswerValidator

BODY = "622202123456789"
NUMBER = BODY + luhn_check_digit(BODY)


def card(**kw: object) -> pb.ListCardsResponse:
    fields: dict[str, object] = {
        "card_type": pb.CARD_TYPE_DEBIT,
        "first_four": NUMBER[:4],
        "last_four": NUMBER[-4:],
        "number_length": 16,
        "card_ref": "c0a1b2",
    }
    fields.update(kw)
    return pb.ListCardsResponse(card=pb.MaskedCard(**fields))  # type: ignore[arg-type]


def summary(listed: int = 1, debit: int = 1, credit: int = 0, **unlisted: int) -> pb.ListCardsResponse:
    entries = [
        pb.UnlistedCardCount(reason=pb.UnlistedReason.Value(f"UNLISTED_REASON_{r}"), card_count=n)
        for r, n in unlisted.items()
    ]
    return pb.ListCardsResponse(
        summary=pb.ListCardsSummary(
            listed_card_count=listed, debit_card_count=debit, credit_card_count=credit, unlisted=entries
        )
    )


def run(*messages: pb.ListCardsResponse) -> object:
    v = AnswerValidator("102")
    for m in messages:
        v.feed(m)
    return v.finish()


def rejected(*messages: pb.ListCardsResponse) -> str:
    with pytest.raises(AnswerRejected) as e:
        run(*messages)
    return e.value.reason


def test_a_valid_answer_keeps_only_masked_fields() -> None:
    answer = run(
        card(),
        card(card_type=pb.CARD_TYPE_CREDIT, card_ref="c2", number_length=19),
        summary(2, 1, 1, NO_PHONE_ON_FILE=2),
    )
    assert answer.cards[0].first_four == NUMBER[:4] and answer.cards[0].kind == "debit"  # type: ignore[attr-defined]
    assert answer.cards[1].kind == "credit" and answer.cards[1].number_length == 19  # type: ignore[attr-defined]
    assert answer.unlisted == {"NO_PHONE_ON_FILE": 2}  # type: ignore[attr-defined]
    assert run(summary(0, 0, 0)).cards == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ((card(first_four=NUMBER), summary()), "FULL_CARD_NUMBER"),
        ((card(last_four="6222 0212 3456 7890"), summary()), "FULL_CARD_NUMBER"),
        ((card(card_ref=f"ref{NUMBER}"), summary()), "FULL_CARD_NUMBER"),
        ((card(first_four="62a2"), summary()), "BAD_DIGITS"),
        ((card(last_four="12345"), summary()), "BAD_DIGITS"),
        ((card(first_four="６２２２"), summary()), "BAD_DIGITS"),
        ((card(number_length=25), summary()), "BAD_DIGITS"),
        ((card(card_type=pb.CARD_TYPE_UNSPECIFIED), summary()), "UNKNOWN_CARD_TYPE"),
        ((card(card_type=7), summary()), "UNKNOWN_CARD_TYPE"),
        ((card(card_ref=""), summary()), "BAD_CARD_REF"),
        ((card(card_ref="a b"), summary()), "BAD_CARD_REF"),
        ((card(), card(), summary(2, 2, 0)), "BAD_CARD_REF"),
        ((card(card_ref="x" * 2000), summary()), "MESSAGE_TOO_LARGE"),
        ((card(), summary(2, 2, 0)), "SUMMARY_MISMATCH"),
        ((card(), summary(1, 0, 1)), "SUMMARY_MISMATCH"),
        ((card(), summary(1, 1, 0, NO_PHONE_ON_FILE=0)), "SUMMARY_MISMATCH"),
        ((card(),), "NO_SUMMARY"),
        ((), "NO_SUMMARY"),
        ((summary(0, 0, 0), summary(0, 0, 0)), "MESSAGE_AFTER_SUMMARY"),
        ((pb.ListCardsResponse(), summary(0, 0, 0)), "EMPTY_MESSAGE"),
    ],
)
def test_violations_are_rejected_with_their_reason(messages: tuple[pb.ListCardsResponse, ...], reason: str) -> None:
    assert rejected(*messages) == reason


def test_an_unspecified_unlisted_reason_is_a_summary_mismatch() -> None:
    bad = pb.ListCardsResponse(
        summary=pb.ListCardsSummary(
            unlisted=[pb.UnlistedCardCount(reason=pb.UNLISTED_REASON_UNSPECIFIED, card_count=1)]
        )
    )
    assert rejected(bad) == "SUMMARY_MISMATCH"


def test_too_many_cards() -> None:
    cards = [card(card_ref=f"c{i}") for i in range(MAX_CARDS + 1)]
    assert rejected(*cards, summary(MAX_CARDS + 1, MAX_CARDS + 1, 0)) == "TOO_MANY_CARDS"


def test_random_hex_references_are_not_mistaken_for_card_numbers() -> None:
    # 13+ digits in a row inside an opaque reference, but not this card's number.
    answer = run(card(card_ref="c1234567890123456789"), summary())
    assert len(answer.cards) == 1  # type: ignore[attr-defined]


def _with_unknown(message: pb.ListCardsResponse, raw: bytes, inner: str = "card") -> pb.ListCardsResponse:
    """`message` with `raw` (encoded fields) appended as unknown fields of its
    card or summary, as a hostile bank would send them."""
    sub = getattr(message, inner)
    sub.MergeFromString(raw)
    out = pb.ListCardsResponse()
    out.ParseFromString(message.SerializeToString())
    return out


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(data)) + data


def _text_field(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode())


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


@pytest.mark.parametrize("sep", ["-", "_", " ", ".", "/", "·", "－"])
def test_item4_a_card_ref_that_is_the_number_split_by_separators_is_rejected(sep: str) -> None:
    ref = sep.join(NUMBER[i : i + 4] for i in range(0, 16, 4))
    assert rejected(card(card_ref=ref), summary()) == "FULL_CARD_NUMBER"


def test_item4_full_width_digits_count_as_digits() -> None:
    full_width = "".join(chr(ord("０") + int(d)) for d in NUMBER)
    assert rejected(card(card_ref=full_width), summary()) == "FULL_CARD_NUMBER"


@pytest.mark.parametrize(
    "raw",
    [
        _text_field(99, NUMBER),
        _text_field(99, "-".join(NUMBER[i : i + 4] for i in range(0, 16, 4))),
        _varint_field(99, int(NUMBER)),
        _bytes_field(98, _varint_field(1, 7) + _text_field(5, NUMBER)),
    ],
    ids=["text", "split-text", "varint", "nested"],
)
def test_item4_a_card_number_in_an_unknown_field_is_rejected(raw: bytes) -> None:
    assert rejected(_with_unknown(card(), raw), summary()) == "FULL_CARD_NUMBER"
    assert rejected(card(), _with_unknown(summary(), raw, "summary")) == "FULL_CARD_NUMBER"


def test_item4_unknown_fields_are_never_kept() -> None:
    message = _with_unknown(card(), _text_field(99, "harmless extra"))
    assert len(message.SerializeToString()) > len(card().SerializeToString())
    v = AnswerValidator("102")
    v.feed(message)
    assert message.SerializeToString() == card().SerializeToString()


def test_item4_honest_references_with_digits_pass() -> None:
    run(card(card_ref="ref_2024_0101_000123"), summary())
    run(card(card_ref="c-" + NUMBER[:4] + "-x-" + NUMBER[-4:]), summary())


def test_a_message_grpc_could_not_decode_is_rejected_as_malformed() -> None:
    """grpc.aio yields None for a streamed message its deserializer failed
    on; the hub used to crash its bank task on it (found by the hostile-bank
    fuzz) and leave the bank PENDING."""
    v = AnswerValidator("102")
    with pytest.raises(AnswerRejected) as e:
        v.feed(None)
    assert e.value.reason == "MALFORMED_MESSAGE"
