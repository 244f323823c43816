"""The text rules every context shares (domain/text.py)."""
from __future__ import annotations

import json

import pytest

from domain.text import CONTROL, LONE_SURROGATE, whole_number, without_lone_surrogates


@pytest.mark.parametrize(("text", "number"), [
    ("0", 0), ("42", 42), ("999999999", 999_999_999),
    ("", None), ("1234567890", None),  # more digits than allowed
    ("\u00b2", None), ("\u0663", None),  # digits to str.isdigit(): superscript two, Arabic-Indic three
    ("+5", None), ("-5", None), (" 5", None), ("5 ", None), ("5.0", None), ("1_0", None), ("5\n", None),
])
def test_a_whole_number_is_ascii_digits_only_and_no_longer_than_allowed(
        text: str, number: int | None) -> None:
    assert whole_number(text, 9) == number


def test_five_thousand_digits_are_no_number_and_raise_nothing() -> None:
    assert whole_number("9" * 5000, 9) is None  # int() would raise past 4,300 digits


def test_control_characters_are_the_c0_set_and_del() -> None:
    assert all(CONTROL.search(chr(c)) for c in [*range(0x20), 0x7F])
    assert not CONTROL.search("plain text, é, \u00a0 and \u2028")


def test_lone_surrogates_are_found_and_replaced_and_whole_characters_kept() -> None:
    odd = json.loads('"half \\ud800 and an emoji \\ud83d\\ude00"')  # JSON's escapes: one lone, one pair
    assert LONE_SURROGATE.findall(odd) == ["\ud800"]
    assert without_lone_surrogates(odd) == "half ? and an emoji \U0001f600"
    assert LONE_SURROGATE.search(without_lone_surrogates(odd)) is None
