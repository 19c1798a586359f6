"""``voxkey run``: the daemon built from the config, with the signals systemd sends.

The parts themselves are built where they live (``voxkey.transports.host.build_links``
opens the keyboard links, ``voxkey.ui.open_buttons`` the buttons); this module
only connects the process to the daemon: SIGTERM/SIGINT stop it gracefully,
SIGHUP reloads its config.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from types import FrameType

from voxkey.config import Config
from voxkey.daemon import Daemon, RunOptions


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
    daemon = Daemon(config, options)
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
