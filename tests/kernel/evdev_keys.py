"""Host side of a keyboard: evdev key events → the text a host would type.

The guest records raw evdev events from the keyboard the host kernel created
for our gadget. ``decode_events`` replays them through ``XkbHost`` (libxkbcommon
with xkeyboard-config's layout, what every Linux desktop uses), so the text is
what a real host with that layout types, independent of voxkey's own layout
tables. Host behaviour on top of xkb:
- an autorepeat event (value 2) types the key again, as a host does for a held key;
- a new keyboard device (replug, recorded as a NEW_KEYBOARD marker) starts
  with all keys up;
- Caps Lock follows the LED state the host set (the recorder logs every LED
  write it makes as an EV_LED event), and xkb applies it like a desktop does:
  letters inverted, Shift types lower case.

``KEY_TO_HID`` maps evdev key codes back to HID usages, for messages that show
which strokes arrived.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from evdev import ecodes

from voxkey.layouts.xkb_host import XkbHost

NEW_KEYBOARD = -1
"""Recorder marker (not an evdev type): the host created a new device for the keyboard."""
EV_KEY = ecodes.EV_KEY
EV_LED = ecodes.EV_LED
LED_CAPSL = ecodes.LED_CAPSL

# HID usage (page 0x07) → evdev key name, as Linux's hid-input maps a keyboard.
# (Linux maps both 0x31 and 0x32 — the ANSI and ISO keys beside Enter — to
# KEY_BACKSLASH; the reverse table keeps 0x31, the key an ANSI/us host uses.)
_HID_TO_KEY_NAME: dict[int, str] = {
    **{0x04 + i: f"KEY_{chr(ord('A') + i)}" for i in range(26)},
    **{0x1E + i: f"KEY_{i + 1}" for i in range(9)},
    0x27: "KEY_0",
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
    0x33: "KEY_SEMICOLON",
    0x34: "KEY_APOSTROPHE",
    0x35: "KEY_GRAVE",
    0x36: "KEY_COMMA",
    0x37: "KEY_DOT",
    0x38: "KEY_SLASH",
    0x39: "KEY_CAPSLOCK",
    **{0x3A + i: f"KEY_F{i + 1}" for i in range(12)},
    0x46: "KEY_SYSRQ",
    0x47: "KEY_SCROLLLOCK",
    0x48: "KEY_PAUSE",
    0x49: "KEY_INSERT",
    0x4A: "KEY_HOME",
    0x4B: "KEY_PAGEUP",
    0x4C: "KEY_DELETE",
    0x4D: "KEY_END",
    0x4E: "KEY_PAGEDOWN",
    0x4F: "KEY_RIGHT",
    0x50: "KEY_LEFT",
    0x51: "KEY_DOWN",
    0x52: "KEY_UP",
    0x53: "KEY_NUMLOCK",
    0x54: "KEY_KPSLASH",
    0x55: "KEY_KPASTERISK",
    0x56: "KEY_KPMINUS",
    0x57: "KEY_KPPLUS",
    0x58: "KEY_KPENTER",
    **{0x59 + i: f"KEY_KP{i + 1}" for i in range(9)},
    0x62: "KEY_KP0",
    0x63: "KEY_KPDOT",
    0x64: "KEY_102ND",
    0x65: "KEY_COMPOSE",
}

# Modifier keys → bit in the report's modifier byte (usages 0xE0..0xE7).
_MODIFIER_KEY_NAMES = (
    "KEY_LEFTCTRL",
    "KEY_LEFTSHIFT",
    "KEY_LEFTALT",
    "KEY_LEFTMETA",
    "KEY_RIGHTCTRL",
    "KEY_RIGHTSHIFT",
    "KEY_RIGHTALT",
    "KEY_RIGHTMETA",
)

KEY_TO_HID: dict[int, int] = {ecodes.ecodes[name]: usage for usage, name in _HID_TO_KEY_NAME.items()}
MODIFIER_BIT: dict[int, int] = {ecodes.ecodes[name]: 1 << bit for bit, name in enumerate(_MODIFIER_KEY_NAMES)}

Event = Sequence[float]
"""One recorded event: (timestamp, type, code, value)."""


@dataclass
class HostText:
    """What the host typed, and anything a real keyboard should never make it do."""

    text: str
    presses: int = 0
    repeats: list[str] = field(default_factory=list)
    """Characters typed by autorepeat (a key held too long)."""
    unknown: list[str] = field(default_factory=list)
    """Keys that typed nothing on this host layout (not modifiers, not Caps Lock)."""
    held_at_end: list[str] = field(default_factory=list)
    """Keys still down when the recording ended (stuck keys)."""
    dropped: int = 0
    """SYN_DROPPED events: the kernel discarded events because the recorder read too slowly."""
    longest_hold_s: float = 0.0
    """Longest press-to-release time of a non-modifier key (host timestamps)."""


def decode_events(events: Iterable[Event], layout: str = "us", variant: str = "") -> HostText:
    """Replay ``events`` through a host keyboard with xkb ``layout``; see the module docstring."""
    host = XkbHost(layout, variant)
    result = HostText("")
    out: list[str] = []
    pressed_at: dict[int, float] = {}
    for timestamp, ev_type, code, value in events:
        ev_type, code, value = int(ev_type), int(code), int(value)
        if ev_type == NEW_KEYBOARD:  # a replugged keyboard starts with every key up
            host = XkbHost(layout, variant)
            pressed_at.clear()
            continue
        if ev_type == ecodes.EV_SYN and code == ecodes.SYN_DROPPED:
            result.dropped += 1
            continue
        if ev_type == EV_LED and code == LED_CAPSL:
            if bool(value) != host.caps_lock:
                host.toggle_caps_lock()
            continue
        if ev_type != EV_KEY or code == ecodes.KEY_CAPSLOCK:
            continue  # Caps Lock's effect arrives as the LED state the host set
        if value == 0:
            if code in pressed_at and code not in MODIFIER_BIT:
                result.longest_hold_s = max(result.longest_hold_s, float(timestamp) - pressed_at[code])
            pressed_at.pop(code, None)
            host.key_event(code, False)
            continue
        if value == 1:
            pressed_at[code] = float(timestamp)
        text = host.key_event(code, True)
        if code in MODIFIER_BIT:
            continue
        result.presses += value == 1
        if not text:
            result.unknown.append(str(ecodes.KEY.get(code, code)))
        elif value == 2:
            result.repeats.append(text)
        out.append(text)
    result.text = "".join(out)
    result.held_at_end = [str(ecodes.KEY.get(code, code)) for code in sorted(pressed_at)]
    return result
