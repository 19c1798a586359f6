"""The PC simulation's virtual keyboard (voxkey.transports.uinput) on a real kernel's /dev/uinput."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kernel.evdev_keys import assert_ejected_once_after_the_text, decode_events, without_eject
from voxkey.hid import USAGES
from voxkey.transports.uinput import HID_TO_EVDEV_NAME, MODIFIER_EVDEV_NAMES, hid_usage_to_evdev, pressed_keys


@pytest.mark.kernel
@pytest.mark.guest_case("uinput.type_text")
def test_uinput_keyboard_types_exactly_what_was_sent(guest_case_result: dict[str, Any]) -> None:
    result = guest_case_result
    assert result["rc"] == 0, result["stderr"]
    assert result["name"] == "voxkey virtual keyboard"
    host = decode_events(without_eject(result["events"]), "us")
    assert host.text == result["text"]  # Backspace included: xkb reports it as "\b", as a desktop receives it
    assert not host.held_at_end and not host.repeats and not host.unknown


@pytest.mark.kernel
@pytest.mark.guest_case("uinput.type_text")
def test_uinput_keyboard_presses_eject_once_after_the_text(guest_case_result: dict[str, Any]) -> None:
    assert_ejected_once_after_the_text(guest_case_result["events"])


def test_every_layout_key_has_an_evdev_code() -> None:
    for name, usage in USAGES.items():
        assert hid_usage_to_evdev(usage) is not None, name
    assert len(MODIFIER_EVDEV_NAMES) == 8


def test_report_to_pressed_keys() -> None:
    from evdev import ecodes

    shift_a = bytes([0x02, 0, USAGES["a"], 0, 0, 0, 0, 0])
    assert pressed_keys(shift_a) == {ecodes.KEY_LEFTSHIFT, ecodes.KEY_A}
    altgr_q = bytes([0x40, 0, USAGES["q"], 0, 0, 0, 0, 0])
    assert pressed_keys(altgr_q) == {ecodes.KEY_RIGHTALT, ecodes.KEY_Q}
    assert pressed_keys(bytes(8)) == set()
    assert HID_TO_EVDEV_NAME[0x64] == "KEY_102ND"
