"""A host computer's keyboard handling, simulated with libxkbcommon.

Every Linux desktop turns key events into text with xkeyboard-config layouts
through libxkbcommon (or the X server's identical XKB code) plus the locale's
Compose table for dead keys. ``XkbHost`` does exactly that, so it is the
reference our layout data is generated from and checked against: it receives
HID reports (or evdev key events, for a real kernel's input device) and returns
the text a host with that layout would type.

Needs the PyPI package ``xkbcommon`` (built against ``libxkbcommon-dev``), the
Debian package ``xkb-data`` (the layouts) and ``libx11-data`` (Compose tables).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from xkbcommon import xkb

from voxkey.hid import MODIFIER_BITS, RELEASE_ALL, USAGES
from voxkey.keymap import KeyStroke

COMPOSE_LOCALE = "en_US.UTF-8"
"""Dead keys resolve through this locale's Compose table, the one most UTF-8 locales include."""

_EVDEV_LETTERS = dict(zip("qwertyuiop", range(16, 26), strict=True))
_EVDEV_LETTERS.update(zip("asdfghjkl", range(30, 39), strict=True))
_EVDEV_LETTERS.update(zip("zxcvbnm", range(44, 51), strict=True))

EVDEV_KEYS: dict[int, int] = {
    **{USAGES[letter]: code for letter, code in _EVDEV_LETTERS.items()},
    **{USAGES[str(digit)]: 1 + digit for digit in range(1, 10)},
    USAGES["0"]: 11,
    USAGES["esc"]: 1,
    USAGES["minus"]: 12,
    USAGES["equal"]: 13,
    USAGES["backspace"]: 14,
    USAGES["tab"]: 15,
    USAGES["leftbrace"]: 26,
    USAGES["rightbrace"]: 27,
    USAGES["enter"]: 28,
    USAGES["semicolon"]: 39,
    USAGES["apostrophe"]: 40,
    USAGES["grave"]: 41,
    USAGES["backslash"]: 43,
    USAGES["nonus_hash"]: 43,  # Linux's HID driver gives both usages the same key code
    USAGES["comma"]: 51,
    USAGES["dot"]: 52,
    USAGES["slash"]: 53,
    USAGES["space"]: 57,
    USAGES["capslock"]: 58,
    USAGES["nonus_backslash"]: 86,
    USAGES["delete"]: 111,
    USAGES["home"]: 102,
    USAGES["end"]: 107,
    USAGES["up"]: 103,
    USAGES["down"]: 108,
    USAGES["left"]: 105,
    USAGES["right"]: 106,
}
"""HID usage → Linux evdev key code, as the kernel's hid-input table maps them."""

EVDEV_MODIFIERS: dict[int, int] = {
    MODIFIER_BITS["ctrl"]: 29,
    MODIFIER_BITS["shift"]: 42,
    MODIFIER_BITS["alt"]: 56,
    MODIFIER_BITS["gui"]: 125,
    MODIFIER_BITS["rctrl"]: 97,
    MODIFIER_BITS["rshift"]: 54,
    MODIFIER_BITS["altgr"]: 100,
    MODIFIER_BITS["rgui"]: 126,
}
"""Modifier bit of the report's first byte → evdev key code."""

XKB_KEYCODE_OFFSET = 8
EVDEV_CAPSLOCK = 58


@cache
def _context() -> xkb.Context:
    return xkb.Context()


@cache
def _keymap(layout: str, variant: str) -> xkb.Keymap:
    """Compiling a keymap takes tens of milliseconds; hosts of one layout share it (it is immutable)."""
    return _context().keymap_new_from_names(layout=layout, variant=variant or None)


@cache
def _compose_table() -> xkb.ComposeTable:
    return _context().compose_table_new_from_locale(COMPOSE_LOCALE)


class XkbHost:
    """One host: an xkb keymap, its live state (held keys, locks) and a Compose state."""

    def __init__(self, layout: str, variant: str = "") -> None:
        self.layout = layout
        self.variant = variant
        self.keymap = _keymap(layout, variant)
        self.state = self.keymap.state_new()
        self.compose = _compose_table().compose_state_new()
        self._held_modifiers = 0
        self._held_keys: set[int] = set()

    def key_event(self, evdev_code: int, pressed: bool) -> str:
        """Feed one evdev key event; return the text it types (usually one character or nothing)."""
        keycode = evdev_code + XKB_KEYCODE_OFFSET
        text = self._text_for_press(keycode) if pressed else ""
        self.state.update_key(keycode, xkb.KeyDirection.XKB_KEY_DOWN if pressed else xkb.KeyDirection.XKB_KEY_UP)
        return text

    def report(self, report: bytes) -> str:
        """Feed one 8-byte boot keyboard report, the way Linux's hid-input turns it into key events."""
        modifiers, keys = report[0], {usage for usage in report[2:] if usage}
        out: list[str] = []
        for bit, code in EVDEV_MODIFIERS.items():
            if (modifiers ^ self._held_modifiers) & bit:
                out.append(self.key_event(code, bool(modifiers & bit)))
        for usage in sorted(self._held_keys - keys):
            out.append(self.key_event(EVDEV_KEYS[usage], False))
        for usage in sorted(keys - self._held_keys):
            out.append(self.key_event(EVDEV_KEYS[usage], True))
        self._held_modifiers, self._held_keys = modifiers, keys
        return "".join(out)

    def reports(self, reports: Iterable[bytes]) -> str:
        return "".join(self.report(report) for report in reports)

    def stroke(self, stroke: KeyStroke) -> str:
        """Press and release one stroke with its modifiers."""
        return self.report(stroke.press_report()) + self.report(RELEASE_ALL)

    def strokes(self, strokes: Iterable[KeyStroke]) -> str:
        return "".join(self.stroke(stroke) for stroke in strokes)

    def toggle_caps_lock(self) -> None:
        self.key_event(EVDEV_CAPSLOCK, True)
        self.key_event(EVDEV_CAPSLOCK, False)

    @property
    def caps_lock(self) -> bool:
        return bool(self.state.led_name_is_active("Caps Lock"))

    def keysym_name(self, stroke: KeyStroke) -> str:
        """Name of the keysym this stroke's key gives with its modifiers (``dead_acute``, ``eacute``)."""
        self.report(bytes([stroke.modifiers]) + bytes(7))
        keysym = self.state.key_get_one_sym(EVDEV_KEYS[stroke.usage] + XKB_KEYCODE_OFFSET)
        self.report(RELEASE_ALL)
        return str(xkb.keysym_get_name(keysym))

    def _text_for_press(self, keycode: int) -> str:
        keysym = self.state.key_get_one_sym(keycode)
        if self.compose.feed(keysym) == xkb.ComposeFeedResult.XKB_COMPOSE_FEED_ACCEPTED:
            status = self.compose.get_status()
            if status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSING:
                return ""
            if status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSED:
                text = str(self.compose.get_utf8())
                self.compose.reset()
                return text
            if status == xkb.ComposeStatus.XKB_COMPOSE_CANCELLED:
                self.compose.reset()
                return ""
        text = str(self.state.key_get_string(keycode))
        return "\n" if text == "\r" else text
