"""Every layout file against the reference: xkeyboard-config through libxkbcommon.

Typing a character means: encode it to HID reports with our data, feed the
reports to a simulated Linux host (``XkbHost``: the kernel's HID usage → key code
table, the xkb keymap for the layout, the en_US.UTF-8 Compose table for dead
keys) and compare what that host types with what we meant.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from voxkey.hid import MODIFIER_BITS, USAGE_NAMES, USAGES
from voxkey.keymap import LAYOUT_DIR, KeyStroke, Layout, available_layouts, decode, encode
from voxkey.layouts import generate
from voxkey.layouts.xkb_host import EVDEV_KEYS, XkbHost

REQUIRED = ["us", "us-intl", "gb", "de", "fr", "es", "it", "pt", "ch", "se", "no", "dk", "fi", "nl", "be"]
REQUIRED += ["dvorak", "colemak"]
ALTGR = MODIFIER_BITS["altgr"]


@cache
def xkb_names(name: str) -> tuple[str, str]:
    data = yaml.safe_load((LAYOUT_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    return data["xkb"]["layout"], data["xkb"]["variant"]


def host_for(name: str, caps_lock: bool = False) -> XkbHost:
    host = XkbHost(*xkb_names(name))
    if caps_lock:
        host.toggle_caps_lock()
        assert host.caps_lock or name == "colemak"
    return host


def all_chars(layout: Layout) -> str:
    return "".join(layout.strokes)


def test_every_required_layout_is_available() -> None:
    assert set(REQUIRED) <= set(available_layouts())


@pytest.mark.parametrize("name", REQUIRED)
def test_every_claimed_character_alone_types_itself_on_xkb(name: str) -> None:
    layout = Layout.load(name)
    host = host_for(name)
    wrong = {}
    for char in layout.strokes:
        host.compose.reset()
        got = host.reports(encode(char, layout))
        if got != char:
            wrong[char] = got
    assert wrong == {}
    assert all(char in layout.strokes for char in "\b\n\t ")


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("caps_lock", [False, True], ids=["caps-off", "caps-on"])
def test_all_characters_in_one_stream_round_trip_through_xkb(name: str, caps_lock: bool) -> None:
    layout = Layout.load(name)
    text = all_chars(layout).replace("\b", "")
    host = host_for(name, caps_lock)
    assert host.reports(encode(text, layout, caps_lock)) == text
    assert host.caps_lock == (caps_lock and name != "colemak")  # the capslock toggles left it as it was
    assert decode(encode(text, layout, caps_lock), layout, caps_lock) == text


@settings(max_examples=150, deadline=None)
@given(data=st.data(), name=st.sampled_from(REQUIRED), caps_lock=st.booleans())
def test_random_strings_round_trip_through_xkb(data: st.DataObject, name: str, caps_lock: bool) -> None:
    layout = Layout.load(name)
    alphabet = sorted(set(layout.strokes) - {"\b"})
    text = data.draw(st.text(alphabet=alphabet, max_size=40))
    host = host_for(name, caps_lock)
    assert host.reports(encode(text, layout, caps_lock)) == text


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(REQUIRED))
def test_backspace_erases_exactly_one_character_on_xkb(data: st.DataObject, name: str) -> None:
    layout = Layout.load(name)
    text = data.draw(st.text(alphabet=sorted(set(layout.strokes) - {"\b"}), min_size=1, max_size=10))
    assert host_for(name).reports(encode(text + "\b", layout)) == text + "\b"


@pytest.mark.parametrize("name", REQUIRED)
def test_every_layout_types_all_of_ascii(name: str) -> None:
    layout = Layout.load(name)
    printable = string.printable.translate({ord(c): None for c in "\r\x0b\x0c"})
    assert layout.unsupported(printable) == []


@pytest.mark.parametrize(
    ("name", "char", "strokes"),
    [
        ("de", "€", ["altgr e"]),
        ("de", "ß", ["minus"]),
        ("de", "ä", ["apostrophe"]),
        ("de", "„", ["altgr v"]),
        ("de", "“", ["altgr b"]),
        ("us-intl", "é", ["altgr e"]),
        ("us-intl", "ê", ["shift 6", "e"]),
        ("us-intl", "ñ", ["altgr n"]),
        ("us-intl", "'", ["apostrophe", "space"]),
        ("us-intl", '"', ["shift apostrophe", "space"]),
        ("es", "ñ", ["semicolon"]),
        ("es", "á", ["apostrophe", "a"]),
        ("fr", "a", ["q"]),
        ("fr", "é", ["2"]),
        ("fr", "ê", ["leftbrace", "e"]),
        ("gb", "£", ["shift 3"]),
        ("gb", "#", ["backslash"]),
        ("ch", "é", ["shift semicolon"]),
        ("ch", "ü", ["leftbrace"]),
        ("se", "å", ["leftbrace"]),
        ("gb", "\\", ["nonus_backslash"]),
        ("fr", "<", ["nonus_backslash"]),
        ("de", "|", ["altgr nonus_backslash"]),
        ("us", "<", ["shift comma"]),
        ("dvorak", "s", ["semicolon"]),
        ("colemak", "s", ["d"]),
        ("colemak", "r", ["s"]),
    ],
)
def test_well_known_keys_are_where_people_expect_them(name: str, char: str, strokes: list[str]) -> None:
    layout = Layout.load(name)
    expected = Layout.from_mapping("x", "", {char: strokes}).strokes[char]
    assert layout.strokes_for(char) == expected


def test_us_intl_reaches_accents_through_dead_keys() -> None:
    layout = Layout.load("us-intl")
    dead_key_chars = [char for char, strokes in layout.strokes.items() if len(strokes) > 1]
    assert {"ê", "ë", "è", "à", "õ", "Ê"} <= set(dead_key_chars)
    host = host_for("us-intl")
    assert host.reports(encode("Crème brûlée, naïve, São Paulo", layout)) == "Crème brûlée, naïve, São Paulo"


@pytest.mark.parametrize("name", REQUIRED)
def test_caps_lock_table_sends_shift_inverted_letters(name: str) -> None:
    """With Caps Lock on, ASCII letters swap Shift (as the old rule said) wherever Caps Lock exists."""
    layout = Layout.load(name)
    if name == "colemak":
        assert dict(layout.caps_lock_strokes) == {}  # its Caps Lock key is a second Backspace
        return
    for char in string.ascii_letters:
        (normal,) = layout.strokes_for(char)
        (locked,) = layout.strokes_for(char, caps_lock=True)
        assert locked == KeyStroke(normal.modifiers ^ MODIFIER_BITS["shift"], normal.usage)


def test_caps_lock_on_european_layouts_covers_more_than_ascii_letters() -> None:
    """xkb capitalises é on AZERTY's 2 key and ü on German keys when locked: we must compensate."""
    fr, de = Layout.load("fr"), Layout.load("de")
    assert fr.strokes_for("é", caps_lock=True) != fr.strokes_for("é")
    assert host_for("fr", caps_lock=True).reports(encode("été", fr, caps_lock=True)) == "été"
    assert de.strokes_for("ü", caps_lock=True) == (KeyStroke(MODIFIER_BITS["shift"], USAGES["leftbrace"]),)
    assert host_for("de", caps_lock=True).reports(encode("Grüße, Ärger", de, caps_lock=True)) == "Grüße, Ärger"


def test_committed_layout_files_are_what_the_generator_makes(tmp_path: Path) -> None:
    """Hand edits or stale data (an xkb-data update) show up here; regenerate to fix."""
    for spec in generate.LAYOUTS:
        generate.write_layout(spec, tmp_path)
        committed = (LAYOUT_DIR / f"{spec.name}.yaml").read_text(encoding="utf-8")
        assert (tmp_path / f"{spec.name}.yaml").read_text(encoding="utf-8") == committed, spec.name


def test_altgr_is_used_only_where_the_layout_has_a_third_level() -> None:
    assert not any(s.modifiers & ALTGR for strokes in Layout.load("us").strokes.values() for s in strokes)
    assert any(s.modifiers & ALTGR for strokes in Layout.load("de").strokes.values() for s in strokes)


def test_hid_to_evdev_table_matches_the_kernel_key_names() -> None:
    """The simulated host's key codes, checked against python-evdev's copy of linux/input-event-codes.h."""
    from evdev import ecodes

    special = {"nonus_backslash": "KEY_102ND", "nonus_hash": "KEY_BACKSLASH", "esc": "KEY_ESC"}
    for usage, code in EVDEV_KEYS.items():
        name = USAGE_NAMES[usage]
        assert ecodes.ecodes[special.get(name, f"KEY_{name.upper()}")] == code, name
    assert {USAGE_NAMES[u] for u in EVDEV_KEYS} >= set(generate.PRINTING_KEYS) | {"enter", "tab", "backspace"}


@pytest.mark.parametrize("name", ["us", "us-intl", "dvorak", "colemak"])
def test_us_style_layouts_never_use_the_iso_key_their_keyboards_lack(name: str) -> None:
    layout = Layout.load(name)
    every_stroke = [s for table in (layout.strokes, layout.caps_lock_strokes) for seq in table.values() for s in seq]
    assert USAGES["nonus_backslash"] not in {stroke.usage for stroke in every_stroke}
