"""German, Italian and French hosts on a real kernel type exactly the sentence voxkey was given.

The guest case (``cases/layouts.py``) records the evdev key events the kernel's
usbhid produced for our gadget; here they are replayed through libxkbcommon
with xkeyboard-config's layout (``de``, ``it``, ``fr``) and the Compose table, i.e. the way a
Linux desktop with that layout turns them into text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from evdev import ecodes

from voxkey.layouts.xkb_host import XkbHost

pytestmark = pytest.mark.kernel


def xkb_text(events: Iterable[Sequence[float]], layout: str) -> str:
    """Text a host with ``layout`` types for recorded (time, type, code, value) events."""
    host = XkbHost(layout)
    out: list[str] = []
    for _, ev_type, code, value in events:
        ev_type, code, value = int(ev_type), int(code), int(value)
        if ev_type == ecodes.EV_LED and code == ecodes.LED_CAPSL and bool(value) != host.caps_lock:
            host.toggle_caps_lock()  # the host switched Caps Lock itself (not through our keys)
        elif ev_type == ecodes.EV_KEY:
            out.append(host.key_event(code, value != 0))
    return "".join(out)


def _judge(observations: dict[str, Any]) -> None:
    assert observations["voxkey"]["rc"] == 0, f"voxkey type failed: {observations['voxkey']}"
    events = observations["events"]
    repeats = sum(1 for _, ev_type, _, value in events if int(ev_type) == ecodes.EV_KEY and int(value) == 2)
    assert repeats == 0, "the host auto-repeated a key (a key was held too long)"
    held: dict[int, int] = {}
    for _, ev_type, code, value in events:
        if int(ev_type) == ecodes.EV_KEY:
            held[int(code)] = int(value)
    assert [code for code, value in held.items() if value] == [], "keys still held on the host at the end"
    assert xkb_text(events, observations["layout"]) == observations["text"]


@pytest.mark.guest_case("layouts.german_sentence")
def test_german_sentence_typed_through_usb_gadget_decodes_exactly_with_xkb_de(
    guest_case_result: dict[str, Any],
) -> None:
    text = guest_case_result["text"]
    assert {"ß", "€", "„", "“", "Ä", "ö", "é", '"', "'"} <= set(text)
    _judge(guest_case_result)


@pytest.mark.guest_case("layouts.german_caps_lock")
def test_german_sentence_with_host_caps_lock_on_decodes_exactly_with_xkb_de(
    guest_case_result: dict[str, Any],
) -> None:
    """ß has no key while Caps Lock is on (xkb makes it ẞ): voxkey switches Caps Lock off around it."""
    caps_leds = [
        int(value)
        for _, ev_type, code, value in guest_case_result["events"]
        if int(ev_type) == ecodes.EV_LED and int(code) == ecodes.LED_CAPSL
    ]
    assert caps_leds[:2] == [0, 1], "the host did not have Caps Lock on when voxkey started typing"
    _judge(guest_case_result)


@pytest.mark.guest_case("layouts.italian_sentence")
def test_italian_sentence_with_altgr_keys_decodes_exactly_with_xkb_it(guest_case_result: dict[str, Any]) -> None:
    assert guest_case_result["layout"] == "it"
    assert {"€", "@", "[", "{", "#", "è", "ç"} <= set(guest_case_result["text"])
    _judge(guest_case_result)


@pytest.mark.guest_case("layouts.french_sentence")
def test_french_sentence_with_dead_keys_decodes_exactly_with_xkb_fr(guest_case_result: dict[str, Any]) -> None:
    assert guest_case_result["layout"] == "fr"
    assert {"ê", "Ê", "ë", "Ë", "ÿ", "«", "€"} <= set(guest_case_result["text"])
    _judge(guest_case_result)
