"""A link into this PC's own input layer: HID reports replayed on a ``/dev/uinput`` keyboard.

This is the simulated voxkey on a PC: the same reports that would go to a host
over USB are turned into key events of a virtual keyboard the kernel creates,
so text appears in whatever window has focus — under X11 and Wayland alike,
because the compositor sees an ordinary keyboard, not synthetic input.

The table below is the kernel's own translation (``hid_keyboard[]`` in
``drivers/hid/hid-input.c``) for the usages a layout can produce, so a report
means the same key here as on a real USB host. The desktop's keyboard layout
turns keys into characters, so ``output.layout`` must match it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections.abc import Sequence
from typing import Any

from voxkey.errors import TransportError
from voxkey.hid import CONSUMER_EJECT, LED_CAPS_LOCK, LED_NUM_LOCK, LED_SCROLL_LOCK, RELEASE_ALL

log = logging.getLogger(__name__)

# HID usage (keyboard page 0x07) → evdev key name, as the Linux HID driver maps them.
HID_TO_EVDEV_NAME: dict[int, str] = {
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
    0x32: "KEY_BACKSLASH",  # Non-US # and ~: the kernel folds it onto the backslash key
    0x33: "KEY_SEMICOLON",
    0x34: "KEY_APOSTROPHE",
    0x35: "KEY_GRAVE",
    0x36: "KEY_COMMA",
    0x37: "KEY_DOT",
    0x38: "KEY_SLASH",
    0x39: "KEY_CAPSLOCK",
    **{0x3A + i: f"KEY_F{i + 1}" for i in range(10)},
    0x44: "KEY_F11",
    0x45: "KEY_F12",
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
    0x64: "KEY_102ND",  # Non-US \ and | (the key left of Z on ISO keyboards)
    0x65: "KEY_COMPOSE",
}

# Modifier bits of byte 0 of a boot keyboard report, in bit order.
MODIFIER_EVDEV_NAMES: tuple[str, ...] = (
    "KEY_LEFTCTRL",
    "KEY_LEFTSHIFT",
    "KEY_LEFTALT",
    "KEY_LEFTMETA",
    "KEY_RIGHTCTRL",
    "KEY_RIGHTSHIFT",
    "KEY_RIGHTALT",
    "KEY_RIGHTMETA",
)


CONSUMER_EVDEV_NAMES = {CONSUMER_EJECT: "KEY_EJECTCD"}
"""Media keys the virtual keyboard has, named as Linux's hid-input maps the consumer usages."""


def evdev_code(name: str) -> int:
    from evdev import ecodes

    code = ecodes.ecodes[name]
    assert isinstance(code, int)
    return code


def hid_usage_to_evdev(usage: int) -> int | None:
    """The evdev key code for a HID keyboard usage, None for usages we never send."""
    name = HID_TO_EVDEV_NAME.get(usage)
    return evdev_code(name) if name else None


def pressed_keys(report: bytes) -> set[int]:
    """evdev codes held down in one boot keyboard report (modifiers included)."""
    keys = {evdev_code(MODIFIER_EVDEV_NAMES[bit]) for bit in range(8) if report[0] & (1 << bit)}
    for usage in report[2:]:
        code = hid_usage_to_evdev(usage) if usage else None
        if code is not None:
            keys.add(code)
    return keys


class UinputLink:
    """A virtual keyboard made with python-evdev; always "connected".

    ``report_delay_s`` spaces reports a little: some compositors drop or
    reorder keys that arrive in the same input frame.
    """

    name = "uinput"
    DEVICE_NAME = "voxkey virtual keyboard"

    def __init__(self, report_delay_s: float = 0.002, device_name: str = DEVICE_NAME) -> None:
        try:
            from evdev import UInput, ecodes
        except ImportError as exc:
            raise TransportError("python-evdev is not installed; run: pip install evdev") from exc
        names = set(HID_TO_EVDEV_NAME.values()) | set(MODIFIER_EVDEV_NAMES) | set(CONSUMER_EVDEV_NAMES.values())
        capabilities: dict[int, Sequence[int]] = {
            ecodes.EV_KEY: sorted(evdev_code(n) for n in names),
            ecodes.EV_LED: [ecodes.LED_NUML, ecodes.LED_CAPSL, ecodes.LED_SCROLLL],
        }
        try:
            self._device: Any = UInput(capabilities, name=device_name)
        except Exception as exc:  # evdev raises OSError or its own UInputError
            raise TransportError(_uinput_hint(exc)) from exc
        self.report_delay_s = report_delay_s
        virtual = getattr(self._device, "device", None)
        self.device_path: str | None = virtual.path if virtual is not None else None
        self._held: set[int] = set()
        self._leds = 0

    def wait_for_host(self, deadline: float | None) -> None:
        return None

    def send(self, report: bytes, deadline: float | None) -> None:
        from evdev import ecodes

        wanted = pressed_keys(report)
        # Releases first, modifiers released last and pressed first: the order a real keyboard produces.
        modifiers = {evdev_code(n) for n in MODIFIER_EVDEV_NAMES}
        for code in sorted(self._held - wanted, key=lambda c: c in modifiers):
            self._device.write(ecodes.EV_KEY, code, 0)
        for code in sorted(wanted - self._held, key=lambda c: c not in modifiers):
            self._device.write(ecodes.EV_KEY, code, 1)
        self._device.syn()
        self._held = wanted
        if self.report_delay_s:
            time.sleep(self.report_delay_s)

    def send_consumer(self, usage: int, deadline: float | None) -> None:
        from evdev import ecodes

        name = CONSUMER_EVDEV_NAMES.get(usage)
        if name is None:
            raise TransportError(f"the virtual keyboard has no media key for consumer usage 0x{usage:04x}")
        for value in (1, 0):
            self._device.write(ecodes.EV_KEY, evdev_code(name), value)
            self._device.syn()
            if self.report_delay_s:
                time.sleep(self.report_delay_s)

    def led_state(self) -> int:
        """Lock-key LEDs as the kernel last set them on our device (it syncs all keyboards)."""
        from evdev import ecodes

        bits = {ecodes.LED_NUML: LED_NUM_LOCK, ecodes.LED_CAPSL: LED_CAPS_LOCK, ecodes.LED_SCROLLL: LED_SCROLL_LOCK}
        while True:
            try:
                event = self._device.read_one()
            except BlockingIOError:
                break
            except OSError as exc:
                log.debug("uinput: reading LED events failed: %s", exc)
                break
            if event is None:
                break
            if event.type == ecodes.EV_LED and event.code in bits:
                bit = bits[event.code]
                self._leds = (self._leds | bit) if event.value else (self._leds & ~bit)
        return self._leds

    def release_all(self) -> None:
        if self._held:
            with contextlib.suppress(Exception):
                self.send(RELEASE_ALL, None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._device.close()


def _uinput_hint(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return (
            "no permission to open /dev/uinput; add yourself to group 'input' (or run: sudo setfacl -m "
            "u:$USER:rw /dev/uinput), or use --output terminal"
        )
    if code == errno.ENOENT or "uinput" in str(exc).lower():
        return "/dev/uinput is missing; load the module with: sudo modprobe uinput (or use --output terminal)"
    return f"cannot create a virtual keyboard through /dev/uinput: {exc}; use --output terminal"
