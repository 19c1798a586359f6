"""``voxkey keys`` and ``voxkey type``: the keyboard path without speech.

Both read the daemon's config (``voxkey.cli.common``): the host's layout, the
unsupported-character policy, the transport, the USB gadget and the Bluetooth
settings come from it unless a flag says otherwise, so ``voxkey type`` types
exactly as the daemon would.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from voxkey.cli.bluetooth import add_bluetooth_options, bluetooth_settings, type_over_bluetooth
from voxkey.cli.common import add_config_option, load_sections, with_flags
from voxkey.errors import ConfigError, HostUnavailableError, TransportError
from voxkey.keymap import Layout, available_layouts, encode
from voxkey.transports.base import Keyboard, ReportLink
from voxkey.transports.terminal import TerminalLink
from voxkey.transports.usb import UsbHidLink
from voxkey.typing_policy import UnsupportedPolicy, parse_policy, prepare_text, typing_layout

if TYPE_CHECKING:
    from voxkey.config import OutputSettings, UsbSettings

OUTPUT_FLAGS = {"layout": "layout", "unsupported": "unsupported_characters"}
USB_FLAGS = {"device": "device", "udc": "udc"}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = subparsers.add_parser("keys", help="print the HID reports that type TEXT, one hex line each")
    keys.add_argument("text", metavar="TEXT")
    _add_layout_option(keys)
    add_config_option(keys)
    keys.set_defaults(func=run_keys)

    type_ = subparsers.add_parser("type", help="type TEXT (or stdin with '-') on the host")
    type_.add_argument("text", metavar="TEXT", help="text to type, or - to read standard input")
    _add_layout_option(type_)
    add_config_option(type_)
    type_.add_argument(
        "--transport",
        choices=("usb", "bluetooth", "terminal", "uinput"),
        default=None,
        help="default: output.transport of the config (with 'both', output.prefer), else usb",
    )
    type_.add_argument("--device", type=Path, default=None, help="HID gadget device (default: usb.device, /dev/hidg0)")
    type_.add_argument("--udc", default=None, help="UDC whose state gates typing (default: usb.udc, else the only one)")
    type_.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for an absent or sleeping host before giving up "
        "(default: output.host_wait_s, 300; 0 = forever)",
    )
    add_bluetooth_options(type_, typing=True)
    type_.set_defaults(func=run_type)


def _add_layout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout",
        default=None,
        help=f"host keyboard layout ({', '.join(available_layouts())}; default: output.layout, us)",
    )
    parser.add_argument(
        "--unsupported",
        type=_policy,
        default=None,
        metavar="|".join(policy.value for policy in UnsupportedPolicy),
        help="what to do with characters the layout cannot type (default: output.unsupported_characters, "
        "transliterate)",
    )


def _policy(value: str) -> UnsupportedPolicy:
    try:
        return parse_policy(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_keys(args: argparse.Namespace) -> int:
    output = with_flags(load_sections(args, "output")["output"], args, OUTPUT_FLAGS)
    host_layout = Layout.load(output.layout)
    policy = output.unsupported_characters
    for report in encode(prepare_text(args.text, host_layout, policy), typing_layout(host_layout, policy)):
        print(report.hex(" "))
    return 0


def typing_transport(args: argparse.Namespace, output: OutputSettings) -> str:
    """``--transport``, else the config's; ``both`` means the preferred link, since one text goes to one host."""
    if args.transport is not None:
        return str(args.transport)
    return output.prefer if output.transport == "both" else output.transport


def run_type(args: argparse.Namespace) -> int:
    sections = load_sections(args, "output", "usb")
    output = with_flags(sections["output"], args, OUTPUT_FLAGS)
    transport = typing_transport(args, output)
    if args.eject and transport != "bluetooth":  # before stdin is read: nothing typed in is lost to the error
        raise TransportError(f"--eject needs --transport bluetooth: the {transport} keyboard has no media keys")
    wait = output.host_wait_s if args.wait is None else args.wait
    host_layout = Layout.load(output.layout)
    policy = output.unsupported_characters
    layout = typing_layout(host_layout, policy)
    text = prepare_text(sys.stdin.read() if args.text == "-" else args.text, host_layout, policy)
    if transport == "bluetooth":
        return type_over_bluetooth(args, text, layout, bluetooth_settings(args), wait)
    link = _link(transport, layout, with_flags(sections["usb"], args, USB_FLAGS))
    keyboard = Keyboard(link, layout, host_wait_s=wait or None)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        keyboard.type(text)
    except HostUnavailableError as exc:
        sys.stdout.write(keyboard.pending_text)
        raise TransportError(f"{exc}; the untyped text was written to standard output") from exc
    finally:
        keyboard.close()
    return 0


def _link(transport: str, layout: Layout, usb: UsbSettings) -> ReportLink:
    if transport == "terminal":
        return TerminalLink(layout)
    if transport == "uinput":
        from voxkey.transports.uinput import UinputLink

        return UinputLink()
    return UsbHidLink.for_gadget(usb.device, usb.udc, require=True)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops typing like Ctrl-C does, so ``finally`` releases every key."""
    raise KeyboardInterrupt
