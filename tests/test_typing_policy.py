"""Unsupported characters and Whisper's typography: never garbage, never a crash, logged once."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxkey.errors import ConfigError
from voxkey.keymap import Layout, decode, encode
from voxkey.layouts.xkb_host import XkbHost
from voxkey.typing_policy import (
    TYPOGRAPHIC_PLAIN,
    UnsupportedPolicy,
    parse_policy,
    prepare_text,
    typing_layout,
)

US, DE, FR, US_INTL = (Layout.load(name) for name in ("us", "de", "fr", "us-intl"))


@pytest.mark.parametrize(
    ("text", "layout", "policy", "expected"),
    [
        ("naïve café", US, "transliterate", "naive cafe"),
        ("naïve café", US, "skip", "nave caf"),
        ("naïve café", US, "linux", "naïve café"),
        ("naïve café", US_INTL, "transliterate", "naïve café"),
        ("Grüße, 5 €", US, "transliterate", "Grusse, 5 EUR"),
        ("Grüße, 5 €", DE, "transliterate", "Grüße, 5 €"),
        ("Ærø – Øre", US, "transliterate", "Aero - Ore"),
        ("Zürich 中国", US, "transliterate", "Zurich ZhongGuo"),
        ("Zürich 中国", US, "skip", "Zrich "),
        ("tab\there\nnext", US, "skip", "tab\there\nnext"),
        ("line\r\nend", US, "transliterate", "line\nend"),
    ],
)
def test_policy_outcomes(text: str, layout: Layout, policy: str, expected: str) -> None:
    assert prepare_text(text, layout, policy) == expected


@pytest.mark.parametrize(
    ("text", "expected_us"),
    [
        ("“Quoted” and ‘single’", "\"Quoted\" and 'single'"),
        ("don’t", "don't"),
        ("wait…", "wait..."),
        ("1–2 and a—b", "1-2 and a-b"),
        ("10\u00a0km and 5\u202f%", "10 km and 5 %"),
        ("zero\u200bwidth soft\u00adhyphen", "zerowidth softhyphen"),
        ("«Bonjour»", '"Bonjour"'),
    ],
)
def test_typographic_characters_become_plain_forms_where_the_layout_lacks_them(text: str, expected_us: str) -> None:
    for policy in UnsupportedPolicy:
        assert prepare_text(text, US, policy) == expected_us


def test_typographic_characters_are_typed_directly_where_the_layout_has_them() -> None:
    assert prepare_text("„Ja“ – sagte er…", DE) == "„Ja“ – sagte er…"
    assert prepare_text("«Bonjour»", FR) == "«Bonjour»"


def test_plain_forms_win_over_unicode_entry() -> None:
    assert prepare_text("“x” — y", US, "linux") == '"x" - y'


def test_decomposed_input_is_composed_first() -> None:
    assert prepare_text("cafe\u0301", US_INTL) == "café"


def test_each_untypable_character_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    layout = Layout.from_mapping("tiny", "", {c: c for c in "abcdefghijklmnopqrstuvwxyz"} | {" ": "space"})
    with caplog.at_level(logging.WARNING, logger="voxkey.typing_policy"):
        for _ in range(3):
            prepare_text("ça ça çb", layout)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert "'tiny' cannot type 'ç' (U+00E7); typing 'c' instead" in messages[0]


def test_unknown_policy_is_a_config_error_naming_the_choices() -> None:
    assert parse_policy("skip") is UnsupportedPolicy.SKIP
    with pytest.raises(ConfigError, match="transliterate, skip, linux"):
        parse_policy("guess")


def test_linux_policy_types_missing_characters_with_ctrl_shift_u() -> None:
    layout = typing_layout(US, "linux")
    text = prepare_text("€ ok", US, "linux")
    reports = encode(text, layout)
    assert decode(reports, layout) == "€ ok"
    first = reports[0]
    assert first[0] == 0x03 and first[2] == 0x18  # Ctrl+Shift held, the u key
    # what a host without an input method types instead: u as a control character, the hex digits, Space
    assert XkbHost("us").reports(reports) == "\x1520ac  ok"


def test_linux_policy_needs_plain_hex_digit_keys_else_it_transliterates() -> None:
    """AZERTY needs Shift for digits, which would end IBus's entry early: no Unicode entry there."""
    assert prepare_text("北京", FR, "linux") == "BeiJing"
    assert not typing_layout(FR, "linux").can_type("北")
    assert typing_layout(US, "linux").can_type("北")


def test_emoji_are_left_out_rather_than_spelled_as_shortcodes() -> None:
    assert prepare_text("ok 😀 ☃", US) == "ok  "


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(),
    name=st.sampled_from(["us", "de", "fr", "us-intl", "dvorak"]),
    policy=st.sampled_from(list(UnsupportedPolicy)),
)
def test_any_text_becomes_typable_under_every_policy(text: str, name: str, policy: UnsupportedPolicy) -> None:
    layout = Layout.load(name)
    prepared = prepare_text(text, layout, policy)
    target = typing_layout(layout, policy)
    assert target.unsupported(prepared) == []
    assert decode(encode(prepared, target), target) == prepared


def test_every_typographic_plain_form_is_typable_on_every_layout() -> None:
    from voxkey.keymap import available_layouts

    for name in available_layouts():
        layout = Layout.load(name)
        for char, plain in TYPOGRAPHIC_PLAIN.items():
            assert layout.unsupported(plain) == [], (name, char)
