"""``voxkey pair``, ``voxkey hosts`` and Bluetooth typing (``voxkey type --transport bluetooth``).

The Bluetooth stack (dbus-fast, the GATT application) is imported only when a
command runs, so ``voxkey type --transport usb`` can share these options
without paying for it. The settings come from the daemon's config (the
``bluetooth:`` section), with these commands' flags over them: a keyboard
paired as ``bluetooth.name`` must be the one the daemon serves later.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from voxkey.cli.common import add_config_option, load_sections, with_flags
from voxkey.errors import BluetoothError, HostUnavailableError, TransportError
from voxkey.hid import CONSUMER_EJECT
from voxkey.keymap import Layout
from voxkey.transports.base import Keyboard

if TYPE_CHECKING:
    from voxkey.transports.bluetooth import BluetoothLink, BluetoothSettings

BLUETOOTH_FLAGS = {
    "adapter": "adapter",
    "name": "name",
    "preferred": "preferred_host",
    "window": "report_window",
    "timeout": "pairing_timeout_s",
    "host_settle": "host_settle_s",
    "pairing": "pairing",
}
"""Option dest → ``BluetoothSettings`` field; each command has the options that concern it."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pair = subparsers.add_parser("pair", help="make voxkey pairable and discoverable until a host bonds")
    pair.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long pairing mode lasts (default: bluetooth.pairing_timeout_s, 120)",
    )
    add_bluetooth_options(pair)
    add_config_option(pair)
    pair.set_defaults(func=run_pair)

    hosts = subparsers.add_parser("hosts", help="list or forget bonded Bluetooth hosts")
    actions = hosts.add_subparsers(dest="hosts_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="bonded hosts, connected ones marked")
    _add_adapter_option(listing)
    listing.add_argument(
        "--preferred", default=None, metavar="ADDR", help="mark this host as the preferred one (default: the config's)"
    )
    add_config_option(listing)
    listing.set_defaults(func=run_hosts_list)
    forget = actions.add_parser("forget", help="remove a host's bond; it must pair again")
    forget.add_argument("address", metavar="ADDR")
    _add_adapter_option(forget)
    add_config_option(forget)
    forget.set_defaults(func=run_hosts_forget)


def _add_adapter_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--adapter", default=None, help="Bluetooth adapter (default: bluetooth.adapter, hci0)")


def add_bluetooth_options(parser: argparse.ArgumentParser, typing: bool = False) -> None:
    """Options of every command that runs the Bluetooth keyboard; ``typing`` adds those of ``type``.

    Each one defaults to the config's ``bluetooth:`` setting (see ``bluetooth_settings``).
    """
    group = parser.add_argument_group("Bluetooth")
    _add_adapter_option(group)
    group.add_argument("--name", default=None, help="name hosts see (default: bluetooth.name, voxkey)")
    group.add_argument("--preferred", default=None, metavar="ADDR", help="preferred bonded host")
    group.add_argument(
        "--pairing",
        choices=("passkey", "just_works"),
        default=None,
        help="how a new host pairs (default: bluetooth.pairing, passkey: type the code the host shows)",
    )
    group.add_argument(
        "--window",
        type=int,
        default=None,
        help="unacknowledged key reports allowed (default: bluetooth.report_window, 8)",
    )
    if typing:
        group.add_argument(
            "--host-settle",
            type=float,
            default=None,
            metavar="SECONDS",
            help="pause between a host subscribing and the first key (default: bluetooth.host_settle_s, 2)",
        )
        group.add_argument("--pair", action="store_true", help="start in pairing mode (for a host not yet bonded)")
        group.add_argument("--stats", default=None, metavar="FILE", help="write delivery statistics as JSON to FILE")
        group.add_argument(
            "--eject",
            action="store_true",
            help="press the media key Eject after the text (brings back an iPad's on-screen keyboard)",
        )


def bluetooth_settings(args: argparse.Namespace) -> BluetoothSettings:
    """The config's ``bluetooth:`` section with this command's flags over it."""
    settings: BluetoothSettings = with_flags(load_sections(args, "bluetooth")["bluetooth"], args, BLUETOOTH_FLAGS)
    return settings


def run_pair(args: argparse.Namespace) -> int:
    from voxkey.transports.bluetooth import open_bluetooth_link

    settings = bluetooth_settings(args)
    timeout = settings.pairing_timeout_s
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    link = open_bluetooth_link(settings)
    _offer_terminal_passkey(link, settings)
    try:
        print(
            f"voxkey: pairing mode for {timeout:.0f} s: choose {settings.name!r} in the host's Bluetooth settings",
            file=sys.stderr,
            flush=True,
        )
        bonded = link.peripheral.start_pairing(timeout).result(timeout=timeout + 30)
    finally:
        link.close()
    if bonded is None:
        raise BluetoothError(f"no host paired within {timeout:.0f} s; run 'voxkey pair' again, then pair at once")
    print(bonded)
    return 0


def run_hosts_list(args: argparse.Namespace) -> int:
    from voxkey.transports.bluetooth import list_hosts

    settings = bluetooth_settings(args)
    for host in list_hosts(settings.adapter, settings.preferred_host):
        marks = ",".join(mark for mark, on in (("connected", host.connected), ("preferred", host.preferred)) if on)
        print(f"{host.address}\t{host.name}\t{marks}".rstrip())
        if host.problem:
            print(f"voxkey: {host.address}: {host.problem}", file=sys.stderr)
    return 0


def run_hosts_forget(args: argparse.Namespace) -> int:
    from voxkey.transports.bluetooth import forget_host

    forget_host(args.address, bluetooth_settings(args).adapter)
    return 0


def type_over_bluetooth(
    args: argparse.Namespace, text: str, layout: Layout, settings: BluetoothSettings, wait: float
) -> int:
    """Type ``text`` to a bonded host, then wait until the host acknowledged every report.

    Returning only after the acknowledgements matters for a one-shot command:
    exiting earlier unregisters the keyboard while the last reports still sit
    in BlueZ's queues, and the host would miss the end of the text.
    """
    from voxkey.transports.bluetooth import open_bluetooth_link

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    link = open_bluetooth_link(settings)
    keyboard = Keyboard(link, layout, host_wait_s=wait or None)
    started = time.monotonic()
    drained = False
    try:
        if args.pair:
            _offer_terminal_passkey(link, settings)
            link.peripheral.start_pairing()
        keyboard.type(text)
        if args.eject:
            keyboard.flush()
            link.send_consumer(CONSUMER_EJECT, None if not wait else time.monotonic() + wait)
        drained = link.drain(wait or 60.0)
    except HostUnavailableError as exc:
        sys.stdout.write(keyboard.pending_text)
        raise TransportError(f"{exc}; the untyped text was written to standard output") from exc
    finally:
        if args.stats:
            _write_stats(args.stats, link, keyboard, time.monotonic() - started)
        keyboard.close()
    if not drained:
        raise TransportError("the host did not acknowledge the last key reports; they may not have arrived")
    return 0


def _write_stats(path: str, link: BluetoothLink, keyboard: Keyboard, elapsed: float) -> None:
    stats = {
        "delivered_chars": keyboard.delivered_chars,
        "seconds": round(elapsed, 3),
        "acknowledged_reports": link.pacer.delivered_reports,
        "replayed_reports": link.pacer.replayed_reports,
        "connection_interval_ms": link.connection_interval_ms(),
        "notification_pdus": link.notification_pdus(),
    }
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(stats, stream)


def _offer_terminal_passkey(link: BluetoothLink, settings: BluetoothSettings) -> None:
    """``pairing: passkey`` from a terminal: the user types the code the host shows (the daemon hears it).

    Without a terminal (standard input is the text to type, or a pipe) there is
    nothing to enter a code with, and BlueZ's request is refused with a message
    that says so.
    """
    if settings.pairing == "passkey" and sys.stdin.isatty():
        link.peripheral.set_passkey_source(TerminalPasskey())


class TerminalPasskey:
    """A passkey source that reads the code the host shows from the terminal, one line per try.

    One reader thread for the whole command: a host that gives up and pairs
    again asks for a new code, and the next line goes to that request.
    """

    def __init__(self, read_line: Callable[[], str] | None = None) -> None:
        self.read_line = read_line or read_terminal_line
        self._pending: concurrent.futures.Future[str] | None = None
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def __call__(self, device: str) -> concurrent.futures.Future[str]:
        from voxkey.text.digits import PASSKEY_DIGITS

        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        with self._lock:
            self._pending = future
            if self._reader is None:
                self._reader = threading.Thread(target=self._read, name="voxkey-passkey-prompt", daemon=True)
                self._reader.start()
        print(f"voxkey: type the {PASSKEY_DIGITS}-digit code the host shows, then Enter:", file=sys.stderr, flush=True)
        return future

    def _read(self) -> None:
        from voxkey.text.digits import PASSKEY_DIGITS, passkey_from_speech

        while True:
            try:
                line = self.read_line()
            except EOFError:
                with self._lock:
                    future, self._pending = self._pending, None
                if future is not None:
                    future.cancel()
                return
            with self._lock:
                future = self._pending
            if future is None or future.done():
                print("voxkey: no host is waiting for a code now", file=sys.stderr, flush=True)
                continue
            passkey = passkey_from_speech(line)
            if passkey is None:
                print(f"voxkey: that is not {PASSKEY_DIGITS} digits; type the code again", file=sys.stderr, flush=True)
                continue
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_result(passkey)


def read_terminal_line() -> str:
    """One line from standard input, read from the file descriptor itself.

    Not ``input()``: the reader thread is still blocked in it when the command
    exits, and Python then aborts ("could not acquire lock for <stdin> at
    interpreter shutdown", seen in the test guest) instead of exiting 0.
    """
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(sys.stdin.fileno(), 1)
        if not chunk:
            if line:
                break
            raise EOFError
        line += chunk
    return line.decode(errors="replace")


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops typing like Ctrl-C does, so ``finally`` releases every key and unregisters."""
    raise KeyboardInterrupt
