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
from voxkey.transports.uinput import HID_TO_EVDEV_NAME, MODIFIER_EVDEV_NAMES

NEW_KEYBOARD = -1
"""Recorder marker (not an evdev type): the host created a new device for the keyboard."""
EV_KEY = ecodes.EV_KEY
EV_LED = ecodes.EV_LED
LED_CAPSL = ecodes.LED_CAPSL
KEY_EJECTCD = ecodes.KEY_EJECTCD
"""What Linux's hid-input makes of the consumer usage Eject (0x00B8); it types nothing."""

KEY_TO_HID: dict[int, int] = {ecodes.ecodes[name]: usage for usage, name in HID_TO_EVDEV_NAME.items()}
MODIFIER_BIT: dict[int, int] = {ecodes.ecodes[name]: 1 << bit for bit, name in enumerate(MODIFIER_EVDEV_NAMES)}

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


def without_eject(events: Iterable[Event]) -> list[Event]:
    """The key events that type text: Eject left out (the cases end their text with one)."""
    return [event for event in events if not (event[1] == EV_KEY and event[2] == KEY_EJECTCD)]


def assert_ejected_once_after_the_text(events: Sequence[Event]) -> None:
    """Eject pressed and released exactly once, after the last key of the text."""
    eject = [(at, value) for at, ev_type, code, value in events if ev_type == EV_KEY and code == KEY_EJECTCD]
    assert [value for _, value in eject] == [1, 0], eject
    last_text_key_at = max(at for at, ev_type, _, _ in without_eject(events) if ev_type == EV_KEY)
    assert eject[0][0] >= last_text_key_at, "Eject must come after the text"


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


def first_difference(expected: str, got: str) -> str:
    """Where the host's text departs from the typed text, with context on both sides."""
    index = next(
        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b), min(len(expected), len(got))
    )
    start = max(0, index - 40)
    return (
        f"host text differs at character {index} (typed {len(expected)} chars, host got {len(got)}):\n"
        f"  typed: {expected[start : index + 40]!r}\n"
        f"  host:  {got[start : index + 40]!r}"
    )
