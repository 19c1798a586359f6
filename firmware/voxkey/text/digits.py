"""Digits out of a transcript: the Bluetooth passkey the user says instead of typing it.

A host pairing voxkey with passkey entry shows six digits; the user says them
and whisper writes what it heard. What whisper tiny.en writes for spoken
digits varies with the speaker and the recording (measured on espeak-ng
speech, see ``docs/reliability.md``): ``1, 2, 3, 4, 5, 6``, ``0.00123``,
``502 991``, ``12 34 56``, ``98 76 54``, ``For 7.0.1.2.``, ``double 5 to 8 1 9``,
``The code is 5 5 1 2 0 8.``, ``8th 6th to 041``. So this reads every digit,
every number word (``oh`` is zero, ``twelve`` is 12, ``thirty four`` is 34,
``four hundred fifty six`` is 456), the homophones whisper writes for digit
words (``to``/``too`` 2, ``for`` 4, ``won`` 1, ``ate`` 8) and ``double``/``triple``,
and skips every other word ("the code is").

A passkey is accepted only when exactly six digits were heard. Nearly every
mistake measured was a digit lost or repeated (``777777777`` for six sevens,
``0 1`` for "zero one" three times), which gives a wrong length and the user
says the code again. Once in 40 transcripts without the daemon's digits prompt
(none with it) whisper kept six digits and changed two; a wrong code is safe
too: BlueZ's pairing fails and nothing bonds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PASSKEY_DIGITS = 6

UNITS = {
    "zero": 0,
    "oh": 0,
    "o": 0,
    "nought": 0,
    "naught": 0,
    "nil": 0,
    "one": 1,
    "won": 1,
    "two": 2,
    "to": 2,
    "too": 2,
    "three": 3,
    "four": 4,
    "for": 4,
    "fore": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "ate": 8,
    "nine": 9,
}
"""Words for one digit, with the homophones whisper writes for them in a string of digits."""

TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
REPEATS = {"double": 2, "triple": 3}

_TOKEN = re.compile(r"[0-9]+|[a-z]+")


@dataclass(frozen=True)
class SpokenDigits:
    """What a transcript says in digits, and the words that were not part of them."""

    digits: str
    skipped: tuple[str, ...] = ()


def read_digits(text: str) -> SpokenDigits:
    """Every digit ``text`` says, in order: numerals, number words, ``double``/``triple`` (pure)."""
    tokens = _TOKEN.findall(text.lower())
    chunks: list[str] = []
    skipped: list[str] = []
    repeat = 1
    i = 0

    def emit(chunk: str) -> None:
        nonlocal repeat
        chunks.append(chunk[0] * repeat + chunk[1:])
        repeat = 1

    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token.isdigit():
            emit(token)
        elif token in REPEATS:
            repeat = REPEATS[token]
        elif token == "hundred":
            # "four hundred fifty six" is 456; "hundred" alone is 100. The digit before it is the hundreds.
            hundreds = chunks.pop() if chunks and len(chunks[-1]) == 1 else "1"
            rest, used = _two_digits(tokens, i + 1)
            chunks.append(hundreds + rest)
            i += used
        elif token in TEENS:
            emit(str(TEENS[token]))
        elif token in TENS:
            if following in UNITS and UNITS[following] > 0 and following not in ("to", "for", "won", "ate", "too"):
                emit(str(TENS[token] + UNITS[following]))
                i += 1
            else:
                emit(str(TENS[token]))
        elif token in UNITS:
            emit(str(UNITS[token]))
        else:
            skipped.append(token)
        i += 1
    return SpokenDigits("".join(chunks), tuple(skipped))


def _two_digits(tokens: list[str], start: int) -> tuple[str, int]:
    """The tens and units after "hundred" as two digits, and how many tokens they took ("and" included)."""
    i = start
    if i < len(tokens) and tokens[i] == "and":
        i += 1
    word = tokens[i] if i < len(tokens) else ""
    following = tokens[i + 1] if i + 1 < len(tokens) else ""
    if word in TEENS:
        return str(TEENS[word]), i + 1 - start
    if word in TENS:
        if following in UNITS and UNITS[following] > 0:
            return str(TENS[word] + UNITS[following]), i + 2 - start
        return str(TENS[word]), i + 1 - start
    if word in UNITS and word not in ("to", "for", "oh", "o"):
        return f"0{UNITS[word]}", i + 1 - start
    return "00", 0


def passkey_from_speech(text: str, length: int = PASSKEY_DIGITS) -> str | None:
    """The passkey ``text`` says (``length`` digits, leading zeros kept), or None for any other count."""
    digits = read_digits(text).digits
    return digits if len(digits) == length else None
