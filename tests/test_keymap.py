import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxkey.errors import LayoutError, UnsupportedCharacterError
from voxkey.hid import RELEASE_ALL, USAGE_NAMES, USAGES
from voxkey.keymap import KeyStroke, Layout, caps_lock_toggles, decode, encode, parse_stroke, pressed_strokes

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


def test_a_caps_lock_table_replaces_the_shift_inversion_rule() -> None:
    chars = {"a": "a", "A": "shift a", "ß": "minus", "ẞ": "shift altgr s"}
    layout = Layout.from_mapping("t", "", chars, caps_lock={"ß": ["capslock", "minus", "capslock"]})
    assert layout.strokes_for("a", caps_lock=True) == layout.strokes_for("a")  # only what the table says
    assert [str(s) for s in layout.strokes_for("ß", caps_lock=True)] == ["capslock", "minus", "capslock"]
    assert decode(encode("ßa", layout, caps_lock=True), layout, caps_lock=True) == "ßa"
    assert Layout.from_mapping("t", "", chars).strokes_for("a", caps_lock=True) == (KeyStroke(0x02, USAGES["a"]),)


def test_caps_lock_table_for_a_character_the_layout_lacks_is_rejected() -> None:
    with pytest.raises(LayoutError, match="caps_lock lists 'b'"):
        Layout.from_mapping("t", "", {"a": "a"}, caps_lock={"b": "shift b"})


def test_layout_file_with_a_malformed_caps_lock_table_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text('name: odd\nchars: {"a": a}\ncaps_lock: [a]\n', encoding="utf-8")
    with pytest.raises(LayoutError, match="'caps_lock' must be a mapping"):
        Layout.load(path)


def test_unicode_entry_types_any_character_as_ctrl_shift_u_hex_space() -> None:
    layout = US.with_unicode_entry()
    assert not US.can_type("€") and layout.can_type("€")
    strokes = layout.strokes_for("€")
    assert strokes[0] == KeyStroke(0x03, USAGES["u"])
    assert [USAGE_NAMES[s.usage] for s in strokes[1:]] == ["2", "0", "a", "c", "space"]
    assert decode(encode("a€b😀", layout), layout) == "a€b😀"
    assert decode(encode("€x", layout, caps_lock=True), layout, caps_lock=True) == "€x"
    assert not layout.can_type("\x07")


def test_unicode_entry_start_follows_the_layout_u_key() -> None:
    dvorak = Layout.load("dvorak").with_unicode_entry()
    assert dvorak.unicode_entry_start() == KeyStroke(0x03, USAGES["f"])  # Dvorak's u is QWERTY's f


def test_an_interrupted_unicode_entry_is_a_decoding_error() -> None:
    layout = US.with_unicode_entry()
    start = layout.unicode_entry_start().press_report()
    with pytest.raises(ValueError, match="interrupted"):
        decode([start, RELEASE_ALL, *encode("2x", US)], layout)
    with pytest.raises(ValueError, match="incomplete"):
        decode([start, RELEASE_ALL, *encode("20ac", US)], layout)


def test_caps_lock_toggles_counts_caps_lock_presses() -> None:
    de = Layout.load("de")
    assert caps_lock_toggles(de.strokes_for("ß", caps_lock=True)) == 2
    assert caps_lock_toggles(de.strokes_for("ß")) == 0


def test_an_undecodable_stroke_is_named_with_its_modifiers_and_key_in_the_error() -> None:
    """What a developer reads when a host would type nothing: every held modifier by name, then the key."""
    with pytest.raises(ValueError, match=r"strokes ctrl shift rshift altgr f1 type nothing on layout us"):
        decode([bytes([0x63, 0, USAGES["f1"], 0, 0, 0, 0, 0])], US)
    assert str(KeyStroke(0, 0xE8)) == "0xe8", "a usage without a name still shows its number"


def test_a_character_pair_swaps_under_caps_lock_only_when_shift_is_all_that_differs() -> None:
    """Without a caps_lock table the inversion rule must not invent strokes: AltGr letters, letters on other keys
    and dead-key pairs with another first stroke keep their own strokes on a caps-locked host."""
    chars = {
        "ø": "altgr o",
        "Ø": "shift altgr o",  # Shift only: swaps
        "é": ["apostrophe", "e"],
        "É": ["apostrophe", "shift e"],  # a dead key, then Shift only: swaps
        "ð": "altgr d",
        "Ð": "altgr shift e",  # another key: does not swap
        "þ": "t",
        "Þ": "altgr t",  # AltGr, not Shift: does not swap
        "ŋ": ["grave", "n"],
        "Ŋ": ["apostrophe", "shift n"],  # another dead key first: does not swap
        "ħ": "h",
        "Ħ": ["shift h", "shift h"],  # another length: does not swap
        "1": "1",
        "!": "shift 1",  # not letters
        "ß": "s",  # its upper case is not one character
    }
    layout = Layout.from_mapping("t", "", chars)
    assert layout.strokes_for("ø", caps_lock=True) == layout.strokes_for("Ø")
    assert layout.strokes_for("Ø", caps_lock=True) == layout.strokes_for("ø")
    assert layout.strokes_for("é", caps_lock=True) == layout.strokes_for("É")
    for char in "ðÐþÞŋŊħĦ1!ß":
        assert layout.strokes_for(char, caps_lock=True) == layout.strokes_for(char), char
    assert set(layout.caps_lock_strokes) == {"ø", "Ø", "é", "É"}


def test_shift_on_either_side_counts_as_the_case_shift() -> None:
    layout = Layout.from_mapping("t", "", {"a": "a", "A": "rshift a"})
    assert layout.strokes_for("a", caps_lock=True) == (KeyStroke(0x20, USAGES["a"]),)


def test_unicode_entry_is_offered_only_where_hex_digits_u_and_space_are_unmodified_keys() -> None:
    """IBus reads the digits as plain key presses: on AZERTY (digits need Shift) an entry would end early."""
    assert not Layout.load("fr").with_unicode_entry().can_type("😀")
    assert Layout.load("de").with_unicode_entry().can_type("😀")
    with pytest.raises(UnsupportedCharacterError):
        Layout.load("fr").with_unicode_entry().strokes_for("😀")
    entry = US.with_unicode_entry()
    assert not entry.can_type("ab"), "one character at a time"
    assert not entry.can_type("\u2028"), "a line separator is not printable"
    no_u = Layout.from_mapping("t", "", {c: c for c in "0123456789abcdef "} | {" ": "space", "u": "shift u"})
    assert not no_u.with_unicode_entry().can_type("€"), "u needs Shift: Ctrl+Shift+U would not start an entry"


def test_unsupported_lists_each_missing_character_once_in_order_and_encode_names_the_first() -> None:
    assert US.unsupported("café über ça") == ["é", "ü", "ç"]
    with pytest.raises(UnsupportedCharacterError) as raised:
        encode("naïve café", US)
    assert raised.value.char == "ï"


def test_an_empty_unicode_entry_is_a_decoding_error() -> None:
    layout = US.with_unicode_entry()
    start = layout.unicode_entry_start().press_report()
    with pytest.raises(ValueError, match="interrupted by ' '"):
        decode([start, RELEASE_ALL, *encode(" ", US)], layout)


def test_ctrl_shift_u_is_an_ordinary_stroke_on_a_layout_without_unicode_entry() -> None:
    layout = Layout.from_mapping("t", "", {"u": "u", "x": "ctrl shift u"})
    assert decode(encode("xu", layout), layout) == "xu"


def test_a_key_held_from_the_previous_report_is_not_pressed_again() -> None:
    """Rollover: the host sees a key go down once, however many reports keep it down."""
    a, b = USAGES["a"], USAGES["b"]
    reports = [bytes([0, 0, a, 0, 0, 0, 0, 0]), bytes([0, 0, a, b, 0, 0, 0, 0]), RELEASE_ALL]
    assert [s.usage for s in pressed_strokes(reports)] == [a, b]
    with pytest.raises(ValueError, match="must be 8 bytes, got 7"):
        list(pressed_strokes([bytes(7)]))


def test_layout_files_are_found_by_name_or_path_and_broken_ones_are_clear_errors(tmp_path: Path) -> None:
    unnamed = tmp_path / "mine.yaml"
    unnamed.write_text('chars: {"a": a}\n', encoding="utf-8")
    layout = Layout.load(unnamed)
    assert (layout.name, layout.description, dict(layout.strokes)) == ("mine", "", {"a": (KeyStroke(0, USAGES["a"]),)})
    assert Layout.load("de").name == "de"
    broken = tmp_path / "broken.yaml"
    broken.write_text("chars: {a: [\n", encoding="utf-8")
    with pytest.raises(LayoutError, match=r"broken\.yaml: not valid YAML"):
        Layout.load(broken)
    no_chars = tmp_path / "nochars.yaml"
    no_chars.write_text("name: x\n", encoding="utf-8")
    with pytest.raises(LayoutError, match="expected a mapping with a 'chars' table"):
        Layout.load(no_chars)
    with pytest.raises(LayoutError, match="expected a stroke or a list of strokes"):
        Layout.from_mapping("t", "", {"a": []})
    with pytest.raises(LayoutError, match="expected a stroke or a list of strokes"):
        Layout.from_mapping("t", "", {"a": ["a", 3]})


def test_the_available_layouts_are_listed_sorted_by_name() -> None:
    from voxkey.keymap import available_layouts

    names = available_layouts()
    assert names == sorted(names) and {"us", "de", "fr", "us-intl"} <= set(names)
    assert "generate" not in names and "__init__" not in names


def test_a_loaded_layout_cannot_be_changed_by_one_of_its_users() -> None:
    """``Layout.load`` hands every caller the same cached object: a caller that could reassign its tables would
    change what every other transport types."""
    import dataclasses

    assert Layout.load("us") is Layout.load("us")
    with pytest.raises(dataclasses.FrozenInstanceError):
        Layout.load("us").unicode_entry = True  # type: ignore[misc]
