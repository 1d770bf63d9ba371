from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cardlookup.checksums import id_check_char, is_luhn_valid, is_valid_id_number, luhn_check_digit


def test_known_id_number_check_character() -> None:
    # The GB 11643-1999 worked example.
    assert id_check_char("11010519491231002") == "X"
    assert is_valid_id_number("11010519491231002X")
    assert not is_valid_id_number("110105194912310021")
    assert not is_valid_id_number("11010519491231002x")  # lowercase x is not the standard form


def test_known_luhn_numbers() -> None:
    assert is_luhn_valid("4111111111111111")
    assert not is_luhn_valid("4111111111111112")
    assert luhn_check_digit("7992739871") == "3"


@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_luhn_completion_is_valid_and_single_digit_errors_are_caught(partial: str) -> None:
    number = partial + luhn_check_digit(partial)
    assert is_luhn_valid(number)
    wrong = str((int(number[-1]) + 1) % 10)
    assert not is_luhn_valid(number[:-1] + wrong)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_id_completion_is_valid(first17: str) -> None:
    assert is_valid_id_number(first17 + id_check_char(first17))


def test_an_id_number_with_a_trailing_newline_is_not_valid() -> None:
    """The shape is matched whole: `$` with re.match would accept "...\\n"."""
    first17 = "31010119900307123"
    number = first17 + id_check_char(first17)
    assert is_valid_id_number(number)
    assert not is_valid_id_number(number + "\n")
    assert not is_valid_id_number(" " + number)
