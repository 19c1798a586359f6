"""The spoken passkey parser, on what whisper tiny.en really wrote for espeak-ng speech.

Each row of ``MEASURED`` is one espeak-ng recording (what was said) and the
transcript ``voxkey transcribe`` printed for it, with the passkey prompt the
daemon uses and without it (``docs/reliability.md`` has the command). The
expected value is the code, or None where whisper lost or repeated a digit:
those must be refused, never turned into a different six-digit code.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxkey.text.digits import passkey_from_speech, read_digits

MEASURED = [
    # said, whisper's transcript, passkey read from it
    ("one two three four five six", "1 2 3 4 5 6.", "123456"),
    ("one two three four five six", "1, 2, 3, 4, 5, 6", "123456"),
    ("four seven zero nine one two", "4 7 0 9 1 2", "470912"),
    ("four seven zero nine one two", "For 7.0.1.2.", None),
    ("four seven oh nine one two", "For 7.01.2.", None),
    ("four seven oh nine one two", "For 7.01.02", "470102"),  # six digits, but not the code said
    ("eight eight three zero zero five", "8 8 3 0 0 5.", "883005"),
    ("eight eight three zero zero five", "88305.", None),
    ("eight eight three zero zero five", "883.0.05.", "883005"),
    ("eight eight three zero zero five", "8 8 3 0 0 5. 8 8 8", None),
    ("nine, eight, seven, six, five, four", "9 8 7 6 5 4", "987654"),
    ("nine, eight, seven, six, five, four", "8 7 6 5 4", None),
    ("zero zero zero one two three", "0 0 0 1 2 3.", "000123"),
    ("zero zero zero one two three", "0.00123", "000123"),
    ("five oh two, nine nine one", "502 991", "502991"),
    ("twelve thirty four fifty six", "12 34 56.", "123456"),
    ("twelve thirty four fifty six", "Well, 34.56.", None),
    ("seven seven seven seven seven seven", "777777777", None),
    ("seven seven seven seven seven seven", "7", None),
    ("two eight four one six three", "2 8 4 1 6 3.", "284163"),
    ("two eight four one six three", "2.4163", None),
    ("six oh four, three two one", "6 so far 3 2 1", None),
    ("three one four one five nine", "3, 1, 4, 1, 5, 9.", "314159"),
    ("zero one zero one zero one", "0 1.", None),
    ("ninety eight seventy six fifty four", "98 76 54", "987654"),
    ("ninety eight seventy six fifty four", "987654", "987654"),
    ("ninety eight seventy six fifty four", "1998, 76, 54,", None),
    ("one hundred twenty three four hundred fifty six", "100 20 3 456", None),
    ("one hundred twenty three four hundred fifty six", "100, 20, 4456", None),
    ("double five two eight one nine", "double 5 to 8 1 9.", "552819"),
    ("double five two eight one nine", "Double 5 to 8 1 9", "552819"),
    ("eight. six. two. zero. four. one.", "8 6 2 0 4 1.", "862041"),
    ("eight. six. two. zero. four. one.", "8th 6th to 041", "862041"),
    ("eight. six. two. zero. four. one.", "6 to 0 for 1.", None),
    ("the code is five five one two zero eight", "The code is 5 5 1 2 0 8.", "551208"),
    ("the code is five five one two zero eight", "The code is 551 to 0.8", "551208"),
    ("oh oh one two three four", "Hello 1 2 3 4.", None),
    ("oh oh one two three four", "0 1 2 3 4.", None),
]


@pytest.mark.parametrize(("said", "transcript", "expected"), MEASURED)
def test_measured_whisper_transcripts(said: str, transcript: str, expected: str | None) -> None:
    assert passkey_from_speech(transcript) == expected, f"said {said!r}, whisper wrote {transcript!r}"


WORDS = [
    # number words whisper may leave spelled out
    ("one two three four five six", "123456"),
    ("oh four oh nine nine one", "040991"),
    ("zero zero zero zero zero zero", "000000"),
    ("twelve thirty four fifty six", "123456"),
    ("thirty-four twelve ninety", "341290"),
    ("four hundred fifty six one two three", "456123"),
    ("one hundred and five, nine hundred", "105900"),
    ("seven hundred seventeen two two two", "717222"),
    ("triple three double oh one", "333001"),
    ("nought nil won too ate fore", "001284"),
    ("Twenty, twenty-one.", "2021"),
    ("It's 4 7 0 9 1 2!", "470912"),
    ("123,456", "123456"),
    ("", ""),
    ("hello world", ""),
]


@pytest.mark.parametrize(("text", "digits"), WORDS)
def test_read_digits(text: str, digits: str) -> None:
    assert read_digits(text).digits == digits


def test_words_that_are_not_digits_are_skipped_and_reported() -> None:
    assert read_digits("The code is 5 5 1 2 0 8.").skipped == ("the", "code", "is")


@pytest.mark.parametrize("text", ["1 2 3 4 5", "1 2 3 4 5 6 7", "", "no code here", "12345 678"])
def test_a_passkey_is_exactly_six_digits(text: str) -> None:
    assert passkey_from_speech(text) is None


def test_leading_zeros_are_part_of_the_passkey() -> None:
    assert passkey_from_speech("oh oh oh oh oh one") == "000001"
    assert passkey_from_speech("1 2 3 4", length=4) == "1234"


DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_six_digits_or_nothing(text: str) -> None:
    passkey = passkey_from_speech(text)
    assert passkey is None or (len(passkey) == 6 and passkey.isascii() and passkey.isdigit())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=6, max_size=6),
    st.sampled_from([" ", ", ", ". ", " - "]),
    st.booleans(),
)
def test_every_code_said_digit_by_digit_reads_back(digits: list[int], separator: str, numerals: bool) -> None:
    said = separator.join(str(d) if numerals else DIGIT_WORDS[d] for d in digits)
    assert passkey_from_speech(said) == "".join(map(str, digits))
