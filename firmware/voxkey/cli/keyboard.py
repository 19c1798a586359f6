"""``voxkey keys`` and ``voxkey type``: the keyboard path without speech."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from voxkey.cli.bluetooth import add_bluetooth_options, type_over_bluetooth
from voxkey.errors import HostUnavailableError, TransportError
from voxkey.keymap import Layout, available_layouts, encode
from voxkey.transports.base import Keyboard, ReportLink
from voxkey.transports.terminal import TerminalLink
from voxkey.transports.usb import UsbHidLink
from voxkey.typing_policy import UnsupportedPolicy, prepare_text, typing_layout


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = subparsers.add_parser("keys", help="print the HID reports that type TEXT, one hex line each")
    keys.add_argument("text", metavar="TEXT")
    _add_layout_option(keys)
    keys.set_defaults(func=run_keys)

    type_ = subparsers.add_parser("type", help="type TEXT (or stdin with '-') on the host")
    type_.add_argument("text", metavar="TEXT", help="text to type, or - to read standard input")
    _add_layout_option(type_)
    type_.add_argument("--transport", choices=("usb", "bluetooth", "terminal"), default="usb")
    type_.add_argument("--device", default="/dev/hidg0", help="HID gadget device (usb transport)")
    type_.add_argument("--udc", default=None, help="UDC whose state gates typing (default: the only one)")
    type_.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for an absent or sleeping host before giving up (default 60; 0 = forever)",
    )
    add_bluetooth_options(type_, typing=True)
    type_.set_defaults(func=run_type)


def _add_layout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", default="us", help=f"host keyboard layout ({', '.join(available_layouts())})")
    parser.add_argument(
        "--unsupported",
        choices=[policy.value for policy in UnsupportedPolicy],
        default=UnsupportedPolicy.TRANSLITERATE.value,
        help="what to do with characters the layout cannot type (default: transliterate)",
    )


def run_keys(args: argparse.Namespace) -> int:
    host_layout = Layout.load(args.layout)
    for report in encode(
        prepare_text(args.text, host_layout, args.unsupported), typing_layout(host_layout, args.unsupported)
    ):
        print(report.hex(" "))
    return 0


def run_type(args: argparse.Namespace) -> int:
    if args.eject and args.transport != "bluetooth":  # before stdin is read: nothing typed in is lost to the error
        raise TransportError(f"--eject needs --transport bluetooth: the {args.transport} keyboard has no media keys")
    host_layout = Layout.load(args.layout)
    layout = typing_layout(host_layout, args.unsupported)
    text = prepare_text(sys.stdin.read() if args.text == "-" else args.text, host_layout, args.unsupported)
    if args.transport == "bluetooth":
        return type_over_bluetooth(args, text, layout)
    link: ReportLink
    if args.transport == "terminal":
        link = TerminalLink(layout)
    else:
        link = UsbHidLink.for_gadget(args.device, args.udc, require=True)
    keyboard = Keyboard(link, layout, host_wait_s=args.wait or None)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        keyboard.type(text)
    except HostUnavailableError as exc:
        sys.stdout.write(keyboard.pending_text)
        raise TransportError(f"{exc}; the untyped text was written to standard output") from exc
    finally:
        keyboard.close()
    return 0


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops typing like Ctrl-C does, so ``finally`` releases every key."""
    raise KeyboardInterrupt
