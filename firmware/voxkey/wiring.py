"""``voxkey run``: the daemon built from the config, with the signals systemd sends.

``build_links`` opens the keyboard transports the config names (the Bluetooth
stack, dbus-fast, is imported only when it asks for Bluetooth); ``run`` gives
them to the daemon and connects the process to it: SIGTERM/SIGINT stop it
gracefully, SIGHUP reloads its config.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TextIO

from voxkey.config import Config
from voxkey.daemon import Daemon, RunOptions
from voxkey.keymap import Layout
from voxkey.transports.base import ReportLink
from voxkey.transports.host import Links, PairingControl
from voxkey.transports.terminal import TerminalLink
from voxkey.transports.usb import UsbHidLink


def build_links(config: Config, stream: TextIO | None = None) -> Links:
    """The keyboard links ``output.transport`` asks for, in order of preference (``stream``: the terminal's)."""
    output = config.output
    transport = output.transport
    if transport == "terminal":
        return Links([TerminalLink(Layout.load(output.layout), stream)])
    if transport == "uinput":
        from voxkey.transports.uinput import UinputLink

        return Links([UinputLink()])
    order = [transport] if transport in ("usb", "bluetooth") else [output.prefer, _other(output.prefer)]
    links: list[ReportLink] = []
    pairing: PairingControl | None = None
    for name in order:
        if name == "usb":
            links.append(UsbHidLink.for_gadget(config.usb.device, config.usb.udc))
        else:
            from voxkey.transports.bluetooth import open_bluetooth_link

            bluetooth = open_bluetooth_link(config.bluetooth)
            links.append(bluetooth)
            pairing = bluetooth.peripheral
    return Links(links, pairing)


def _other(transport: str) -> str:
    return "bluetooth" if transport == "usb" else "usb"


def install_signal_handlers(daemon: Daemon) -> Callable[[], None]:
    """SIGTERM/SIGINT stop gracefully, SIGHUP reloads; returns a function that restores the old handlers."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        daemon.request_stop(signal.Signals(signum).name)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        daemon.request_reload()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
        signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, on_hup),
    }

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def run(config: Config, options: RunOptions) -> int:
    """``voxkey run``: the daemon in this process, until a signal or ``q`` stops it; returns the exit code."""
    daemon = Daemon(config, options, link_factory=lambda c: build_links(c, options.stream))
    restore = install_signal_handlers(daemon)
    try:
        return daemon.run()
    finally:
        restore()
        _finish_terminal_line(daemon)


def _finish_terminal_line(daemon: Daemon) -> None:
    """Text printed by the terminal transport ends with a newline, so the shell prompt starts clean."""
    transport = daemon.options.output or daemon.config.output.transport
    if daemon.typist.last_typed_text and transport == "terminal":
        stream = daemon.options.stream or sys.stdout
        with contextlib.suppress(OSError, ValueError):
            stream.write("\n")
            stream.flush()
