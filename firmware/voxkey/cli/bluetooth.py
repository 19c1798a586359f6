"""``voxkey pair``, ``voxkey hosts`` and ``voxkey bt-type``: the Bluetooth keyboard from a shell."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType

from voxkey.errors import BluetoothError, HostUnavailableError, TransportError
from voxkey.keymap import Layout, available_layouts
from voxkey.transports.base import Keyboard
from voxkey.transports.bluetooth import (
    BluetoothSettings,
    forget_host,
    list_hosts,
    open_bluetooth_link,
)
from voxkey.transports.bluetooth.settings import DEFAULT_PAIRING_TIMEOUT_S


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pair = subparsers.add_parser("pair", help="make voxkey pairable and discoverable until a host bonds")
    pair.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_PAIRING_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long pairing mode lasts (default {DEFAULT_PAIRING_TIMEOUT_S:.0f})",
    )
    _add_bluetooth_options(pair)
    pair.set_defaults(func=run_pair)

    hosts = subparsers.add_parser("hosts", help="list or forget bonded Bluetooth hosts")
    actions = hosts.add_subparsers(dest="hosts_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="bonded hosts, connected ones marked")
    listing.add_argument("--adapter", default="hci0")
    listing.add_argument("--preferred", default=None, metavar="ADDR", help="mark this host as the preferred one")
    listing.set_defaults(func=run_hosts_list)
    forget = actions.add_parser("forget", help="remove a host's bond; it must pair again")
    forget.add_argument("address", metavar="ADDR")
    forget.add_argument("--adapter", default="hci0")
    forget.set_defaults(func=run_hosts_forget)

    type_ = subparsers.add_parser("bt-type", help="type TEXT (or stdin with '-') over Bluetooth LE")
    type_.add_argument("text", metavar="TEXT", help="text to type, or - to read standard input")
    type_.add_argument("--layout", default="us", help=f"host keyboard layout ({', '.join(available_layouts())})")
    type_.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for a bonded host (default 60; 0 = forever)",
    )
    type_.add_argument("--pair", action="store_true", help="start in pairing mode (for a host not yet bonded)")
    type_.add_argument("--stats", default=None, metavar="FILE", help="write delivery statistics as JSON to FILE")
    _add_bluetooth_options(type_)
    type_.set_defaults(func=run_bt_type)


def _add_bluetooth_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", default="hci0", help="Bluetooth adapter to serve on (default hci0)")
    parser.add_argument("--name", default="voxkey", help="name hosts see (default voxkey)")
    parser.add_argument("--preferred", default=None, metavar="ADDR", help="preferred bonded host")
    parser.add_argument("--window", type=int, default=8, help="unacknowledged key reports allowed (default 8)")


def _settings(args: argparse.Namespace) -> BluetoothSettings:
    return BluetoothSettings(
        name=args.name,
        adapter=args.adapter,
        preferred_host=args.preferred,
        report_window=args.window,
        pairing_timeout_s=getattr(args, "timeout", DEFAULT_PAIRING_TIMEOUT_S),
    )


def run_pair(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    link = open_bluetooth_link(_settings(args))
    try:
        print(
            f"voxkey: pairing mode for {args.timeout:.0f} s: choose {args.name!r} in the host's Bluetooth settings",
            file=sys.stderr,
            flush=True,
        )
        bonded = link.peripheral.start_pairing(args.timeout).result(timeout=args.timeout + 30)
    finally:
        link.close()
    if bonded is None:
        raise BluetoothError(f"no host paired within {args.timeout:.0f} s; run 'voxkey pair' again, then pair at once")
    print(bonded)
    return 0


def run_hosts_list(args: argparse.Namespace) -> int:
    for host in list_hosts(args.adapter, args.preferred):
        marks = ",".join(mark for mark, on in (("connected", host.connected), ("preferred", host.preferred)) if on)
        print(f"{host.address}\t{host.name}\t{marks}".rstrip())
    return 0


def run_hosts_forget(args: argparse.Namespace) -> int:
    forget_host(args.address, args.adapter)
    return 0


def run_bt_type(args: argparse.Namespace) -> int:
    layout = Layout.load(args.layout)
    text = sys.stdin.read() if args.text == "-" else args.text
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    link = open_bluetooth_link(_settings(args))
    keyboard = Keyboard(link, layout, host_wait_s=args.wait or None)
    started = time.monotonic()
    try:
        if args.pair:
            link.peripheral.start_pairing()
        keyboard.type(text)
        drained = link.drain(args.wait or 60.0)
    except HostUnavailableError as exc:
        sys.stdout.write(keyboard.pending_text)
        raise TransportError(f"{exc}; the untyped text was written to standard output") from exc
    finally:
        elapsed = time.monotonic() - started
        if args.stats:
            _write_stats(args.stats, link, keyboard, elapsed)
        keyboard.close()
    if not drained:
        raise TransportError("the host did not acknowledge the last key reports; they may not have arrived")
    return 0


def _write_stats(path: str, link: object, keyboard: Keyboard, elapsed: float) -> None:
    pacer = getattr(link, "pacer", None)
    stats = {
        "delivered_chars": keyboard.delivered_chars,
        "seconds": round(elapsed, 3),
        "acknowledged_reports": getattr(pacer, "delivered_reports", None),
        "replayed_reports": getattr(pacer, "replayed_reports", None),
    }
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(stats, stream)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops typing like Ctrl-C does, so ``finally`` releases every key and unregisters."""
    raise KeyboardInterrupt
