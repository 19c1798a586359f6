import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxkey.errors import LayoutError, UnsupportedCharacterError
from voxkey.hid import RELEASE_ALL, USAGES
from voxkey.keymap import KeyStroke, Layout, decode, encode, parse_stroke, pressed_strokes

US = Layout.load("us")
TYPABLE_ASCII = string.printable.translate({ord(c): None for c in "\r\x0b\x0c"})


def test_us_layout_types_every_printable_ascii_character_newline_and_tab() -> None:
    assert all(US.can_type(char) for char in TYPABLE_ASCII)
    assert US.strokes_for("\n") == (KeyStroke(0, USAGES["enter"]),)
    assert US.strokes_for("\t") == (KeyStroke(0, USAGES["tab"]),)


@given(st.text(alphabet=TYPABLE_ASCII))
def test_encode_then_decode_gives_back_the_text(text: str) -> None:
    assert decode(encode(text, US), US) == text


@given(st.text(alphabet=string.ascii_letters + " .,!"))
def test_caps_lock_encoding_decodes_right_on_a_caps_locked_host(text: str) -> None:
    assert decode(encode(text, US, caps_lock=True), US, caps_lock=True) == text


def test_caps_lock_inverts_shift_for_letters_only() -> None:
    assert encode("a", US, caps_lock=True)[0][0] == 0x02
    assert encode("A", US, caps_lock=True)[0][0] == 0x00
    assert encode("!", US, caps_lock=True) == encode("!", US)


def test_every_press_is_followed_by_a_release_so_doubled_keys_register_twice() -> None:
    reports = encode("book", US)
    assert reports[1::2] == [RELEASE_ALL] * 4
    assert reports[2] == reports[4]
    assert [stroke.usage for stroke in pressed_strokes(reports)] == [USAGES[c] for c in "book"]


def test_modifiers_are_set_in_the_report_that_presses_the_key() -> None:
    assert encode("A", US) == [bytes([0x02, 0, 0x04, 0, 0, 0, 0, 0]), RELEASE_ALL]


def test_text_ends_with_all_keys_up() -> None:
    assert encode("Hello, world!\n", US)[-1] == RELEASE_ALL


def test_untypable_character_is_a_clear_error_and_produces_no_reports() -> None:
    with pytest.raises(UnsupportedCharacterError, match=r"'us' cannot type 'é' \(U\+00E9\)"):
        encode("café", US)


def test_unknown_layout_names_the_available_ones() -> None:
    with pytest.raises(LayoutError, match=r"available: .*us"):
        Layout.load("klingon")


def test_stroke_spec_with_unknown_key_or_modifier_is_rejected() -> None:
    assert parse_stroke("shift altgr e") == KeyStroke(0x42, USAGES["e"])
    with pytest.raises(LayoutError, match="unknown key name"):
        parse_stroke("shift banana")
    with pytest.raises(LayoutError, match="unknown modifier"):
        parse_stroke("hyper a")


def test_dead_key_sequences_encode_and_decode_as_one_character() -> None:
    layout = Layout.from_mapping("test", "", {"e": "e", "´": ["apostrophe", "space"], "é": ["apostrophe", "e"]})
    assert decode(encode("é´e", layout), layout) == "é´e"
    assert len(encode("é", layout)) == 4


def test_decoding_strokes_the_layout_cannot_produce_is_an_error() -> None:
    with pytest.raises(ValueError, match="type nothing"):
        decode([bytes([0, 0, USAGES["f1"], 0, 0, 0, 0, 0])], US)
