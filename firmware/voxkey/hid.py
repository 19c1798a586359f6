"""USB HID usage ids and the keyboard report format.

Key names follow the HID Usage Tables (page 0x07) with short lower-case names,
so layout files stay readable: ``shift a``, ``altgr q``, ``nonus_backslash``.
"""

from __future__ import annotations

from pathlib import Path

REPORT_LENGTH = 8
"""Boot-protocol keyboard input report: modifiers, reserved, six key slots."""

RELEASE_ALL = bytes(REPORT_LENGTH)

MODIFIER_BITS: dict[str, int] = {
    "ctrl": 0x01,
    "shift": 0x02,
    "alt": 0x04,
    "gui": 0x08,
    "rctrl": 0x10,
    "rshift": 0x20,
    "altgr": 0x40,  # right Alt: the third-level chooser on European layouts
    "rgui": 0x80,
}

LED_NUM_LOCK = 0x01
LED_CAPS_LOCK = 0x02
LED_SCROLL_LOCK = 0x04

CONSUMER_EJECT = 0x00B8
"""Consumer-page usage Eject. An iPad hides its on-screen keyboard while a hardware keyboard is
connected; Eject brings it back (Linux maps it to KEY_EJECTCD)."""


def _usage_table() -> dict[str, int]:
    table = {chr(ord("a") + i): 0x04 + i for i in range(26)}
    table.update({str(d): 0x1E + (d - 1) for d in range(1, 10)})
    table["0"] = 0x27
    table.update(
        {
            "enter": 0x28,
            "esc": 0x29,
            "backspace": 0x2A,
            "tab": 0x2B,
            "space": 0x2C,
            "minus": 0x2D,
            "equal": 0x2E,
            "leftbrace": 0x2F,
            "rightbrace": 0x30,
            "backslash": 0x31,
            "nonus_hash": 0x32,
            "semicolon": 0x33,
            "apostrophe": 0x34,
            "grave": 0x35,
            "comma": 0x36,
            "dot": 0x37,
            "slash": 0x38,
            "capslock": 0x39,
        }
    )
    table.update({f"f{n}": 0x3A + (n - 1) for n in range(1, 13)})
    table.update(
        {
            "sysrq": 0x46,
            "scrolllock": 0x47,
            "pause": 0x48,
            "insert": 0x49,
            "home": 0x4A,
            "pageup": 0x4B,
            "delete": 0x4C,
            "end": 0x4D,
            "pagedown": 0x4E,
            "right": 0x4F,
            "left": 0x50,
            "down": 0x51,
            "up": 0x52,
            "numlock": 0x53,
            "nonus_backslash": 0x64,
            "compose": 0x65,
        }
    )
    return table


USAGES: dict[str, int] = _usage_table()
USAGE_NAMES: dict[int, str] = {usage: name for name, usage in USAGES.items()}

_DESCRIPTOR_FILE = "keyboard-report-descriptor.hex"


def parse_hex_descriptor(text: str) -> bytes:
    """Read a descriptor written as hex bytes, ``#`` starting a comment."""
    cleaned = " ".join(line.split("#", 1)[0] for line in text.splitlines())
    return bytes.fromhex(cleaned)


def keyboard_report_descriptor() -> bytes:
    """The report descriptor the gadget script installs, read from the same file.

    One file feeds both the configfs script and the Bluetooth Report Map so the
    two transports can never describe different keyboards.
    """
    for directory in (
        Path(__file__).resolve().parent / "data",
        Path(__file__).resolve().parents[2] / "gadget",
    ):
        candidate = directory / _DESCRIPTOR_FILE
        if candidate.is_file():
            return parse_hex_descriptor(candidate.read_text())
    raise FileNotFoundError(f"{_DESCRIPTOR_FILE} not found beside the voxkey package")
