"""Every layout against a reference that shares no code or names with the generator.

``tests/test_layouts.py`` checks the layout files with ``XkbHost`` on the
xkb layout/variant each file names, and both the files and that name come from
``voxkey.layouts.generate``: a wrong name there (``dk`` built from ``no``)
passes it. Here nothing comes from the generator or ``XkbHost``:

- the xkb layout a user who picks each of our names means (``XKB_NAMES``),
  written here from xkeyboard-config's layout list;
- the HID usage → Linux key code table (``HID_TO_KEY``), written here from the
  USB HID usage tables and the kernel's key names;
- a host built on libxkbcommon directly (``ReferenceHost``);
- what a speaker of each language expects to type (``NATIVE``) and where the
  letters sit on the keyboard people know (``LETTER_KEYS``), written by hand.
"""

from __future__ import annotations

from functools import cache

import pytest
from evdev import ecodes
from xkbcommon import xkb

from voxkey.keymap import Layout, encode

XKB_NAMES: dict[str, tuple[str, str | None]] = {
    "us": ("us", None),
    "us-intl": ("us", "intl"),
    "gb": ("gb", None),
    "de": ("de", None),
    "fr": ("fr", None),
    "es": ("es", None),
    "it": ("it", None),
    "pt": ("pt", None),
    "ch": ("ch", None),
    "se": ("se", None),
    "no": ("no", None),
    "dk": ("dk", None),
    "fi": ("fi", None),
    "nl": ("nl", None),
    "be": ("be", None),
    "dvorak": ("us", "dvorak"),
    "colemak": ("us", "colemak"),
}
"""Our layout name → (xkb layout, variant) as ``setxkbmap`` or a desktop's layout picker names it."""

_KEYS_BY_USAGE = {
    **{0x04 + i: f"KEY_{chr(ord('A') + i)}" for i in range(26)},
    **{0x1E + i: f"KEY_{(i + 1) % 10}" for i in range(10)},
    0x28: "KEY_ENTER",
    0x29: "KEY_ESC",
    0x2A: "KEY_BACKSPACE",
    0x2B: "KEY_TAB",
    0x2C: "KEY_SPACE",
    0x2D: "KEY_MINUS",
    0x2E: "KEY_EQUAL",
    0x2F: "KEY_LEFTBRACE",
    0x30: "KEY_RIGHTBRACE",
    0x31: "KEY_BACKSLASH",
    0x32: "KEY_BACKSLASH",  # Non-US # and ~: Linux gives it the key code of Backslash
    0x33: "KEY_SEMICOLON",
    0x34: "KEY_APOSTROPHE",
    0x35: "KEY_GRAVE",
    0x36: "KEY_COMMA",
    0x37: "KEY_DOT",
    0x38: "KEY_SLASH",
    0x39: "KEY_CAPSLOCK",
    0x64: "KEY_102ND",  # Non-US \ and |: the ISO key left of Z
}
HID_TO_KEY: dict[int, int] = {usage: ecodes.ecodes[name] for usage, name in _KEYS_BY_USAGE.items()}
"""HID keyboard page usage → Linux evdev key code (HID Usage Tables 1.12 §10, the kernel's hid_keyboard[])."""
MODIFIER_KEYS = [ecodes.KEY_LEFTCTRL, ecodes.KEY_LEFTSHIFT, ecodes.KEY_LEFTALT, ecodes.KEY_LEFTMETA]
MODIFIER_KEYS += [ecodes.KEY_RIGHTCTRL, ecodes.KEY_RIGHTSHIFT, ecodes.KEY_RIGHTALT, ecodes.KEY_RIGHTMETA]
"""Bit n of a boot report's first byte → evdev key code (HID usages 0xE0-0xE7 in order)."""
XKB_OFFSET = 8
"""xkb key code = evdev key code + 8."""

ASCII = "".join(chr(code) for code in range(0x20, 0x7F)) + "\n\t"
NATIVE: dict[str, str] = {
    "us-intl": "éáíóúñçüäöÉÑ¿¡",
    "gb": "£€¬",
    "de": "äöüÄÖÜß€§°„“",
    "fr": "éèàçùêâîôûëïµ²£§€",
    "es": "ñÑçÇ¡¿ºªáéíóúü€",
    "it": "àèéìòùç°§£€",
    "pt": "çÇºª«»áéíóúâêôãõà€",
    "ch": "äöüéèàç§€",
    "se": "åäöÅÄÖ§€é",
    "no": "æøåÆØÅ§€é",
    "dk": "æøåÆØÅ½§€é",
    "fi": "åäöÅÄÖ§€",
    "nl": "€éëï",
    "be": "éèàçù§µ²³€êëü",
}
"""Characters a speaker of the layout's language types daily (beyond ASCII, which every layout must type)."""

LETTER_KEYS: dict[str, dict[str, int]] = {
    "qwerty": {"a": 0x04, "q": 0x14, "w": 0x1A, "y": 0x1C, "z": 0x1D, "m": 0x10},
    "qwertz": {"a": 0x04, "q": 0x14, "w": 0x1A, "y": 0x1D, "z": 0x1C, "m": 0x10},
    "azerty": {"a": 0x14, "q": 0x04, "w": 0x1D, "y": 0x1C, "z": 0x1A, "m": 0x33},
    "dvorak": {"a": 0x04, "o": 0x16, "e": 0x07, "s": 0x33, "z": 0x38, "q": 0x1B},
    "colemak": {"a": 0x04, "r": 0x16, "s": 0x07, "t": 0x09, "o": 0x33, "y": 0x12},
}
"""Where letters sit: the HID usage (the US key cap position) of each letter's key."""
FAMILY = {name: "qwerty" for name in XKB_NAMES}
FAMILY.update(de="qwertz", ch="qwertz", fr="azerty", be="azerty", dvorak="dvorak", colemak="colemak")


@cache
def _context() -> xkb.Context:
    return xkb.Context()


@cache
def _keymap(name: str) -> xkb.Keymap:
    layout, variant = XKB_NAMES[name]
    return _context().keymap_new_from_names(layout=layout, variant=variant)


@cache
def _compose_table() -> xkb.ComposeTable:
    return _context().compose_table_new_from_locale("en_US.UTF-8")


class ReferenceHost:
    """A Linux desktop with one layout: boot reports → key events → xkb state and Compose → text."""

    def __init__(self, name: str) -> None:
        self.state = _keymap(name).state_new()
        self.compose = _compose_table().compose_state_new()
        self.held: set[int] = set()

    def type_reports(self, reports: list[bytes]) -> str:
        out = []
        for report in reports:
            now = {MODIFIER_KEYS[bit] for bit in range(8) if report[0] >> bit & 1}
            now |= {HID_TO_KEY[usage] for usage in report[2:] if usage}
            modifiers_first = sorted(now - self.held, key=lambda code: (code not in MODIFIER_KEYS, code))
            for code in sorted(self.held - now, key=lambda code: (code in MODIFIER_KEYS, code)):
                self.state.update_key(code + XKB_OFFSET, xkb.KeyDirection.XKB_KEY_UP)
            for code in modifiers_first:  # as hid-input reports a boot report: modifiers before keys
                out.append(self._press(code + XKB_OFFSET))
                self.state.update_key(code + XKB_OFFSET, xkb.KeyDirection.XKB_KEY_DOWN)
            self.held = now
        return "".join(out)

    def _press(self, keycode: int) -> str:
        keysym = self.state.key_get_one_sym(keycode)
        if self.compose.feed(keysym) == xkb.ComposeFeedResult.XKB_COMPOSE_FEED_ACCEPTED:
            status = self.compose.get_status()
            if status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSING:
                return ""
            if status in (xkb.ComposeStatus.XKB_COMPOSE_COMPOSED, xkb.ComposeStatus.XKB_COMPOSE_CANCELLED):
                text = str(self.compose.get_utf8()) if status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSED else ""
                self.compose.reset()
                return text
        text = str(self.state.key_get_string(keycode))
        return "\n" if text == "\r" else text

    @property
    def caps_lock(self) -> bool:
        return bool(self.state.led_name_is_active("Caps Lock"))


CAPS_LOCK_TAP = [bytes([0, 0, 0x39, 0, 0, 0, 0, 0]), bytes(8)]


@pytest.mark.parametrize("name", sorted(XKB_NAMES))
def test_every_character_the_layout_claims_types_itself_on_the_layout_a_user_picks(name: str) -> None:
    layout = Layout.load(name)
    wrong = {}
    for char in sorted(layout.strokes):
        typed = ReferenceHost(name).type_reports(encode(char, layout))
        if typed != char:
            wrong[char] = typed
    assert wrong == {}, f"{name}: claimed character → what the host typed"


@pytest.mark.parametrize("name", sorted(XKB_NAMES))
@pytest.mark.parametrize("caps_lock", [False, True], ids=["caps-off", "caps-on"])
def test_ascii_and_the_language_s_own_characters_type_exactly(name: str, caps_lock: bool) -> None:
    layout = Layout.load(name)
    text = ASCII + NATIVE.get(name, "")
    assert layout.unsupported(text) == [], f"{name} cannot type what its users type daily"
    host = ReferenceHost(name)
    if caps_lock:
        host.type_reports(CAPS_LOCK_TAP)
        assert host.caps_lock or name == "colemak"  # colemak's Caps Lock key is a second Backspace
    assert host.type_reports(encode(text, layout, caps_lock)) == text


@pytest.mark.parametrize("name", sorted(XKB_NAMES))
def test_letters_sit_where_the_keyboard_people_know_has_them(name: str) -> None:
    layout = Layout.load(name)
    expected = LETTER_KEYS[FAMILY[name]]
    placed = {letter: [stroke.usage for stroke in layout.strokes_for(letter)] for letter in expected}
    assert placed == {letter: [usage] for letter, usage in expected.items()}


def test_the_reference_host_is_not_fooled_by_a_near_layout() -> None:
    """Norwegian and Danish swap æ and ø: a layout file built from the wrong one must fail here."""
    danish_o_slash = encode("ø", Layout.load("dk"))
    assert ReferenceHost("dk").type_reports(danish_o_slash) == "ø"
    assert ReferenceHost("no").type_reports(danish_o_slash) == "æ"
