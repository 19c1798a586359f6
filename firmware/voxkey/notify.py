"""systemd's notification protocol: a datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``.

The protocol is a few lines, so no package: systemd sets ``$NOTIFY_SOCKET``
for ``Type=notify`` units, and outside systemd every call is a no-op. READY=1
is sent only after the whisper model is loaded, so ``systemctl start`` returns
when voxkey can really take dictation; WATCHDOG=1 comes from the main loop, so
a hung loop gets the service restarted.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state to systemd when run under it; silent otherwise."""

    def __init__(self, socket_path: str | None = None) -> None:
        self.address = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._socket: socket.socket | None = None
        self._last_status = ""
        self._watchdog_s = self.watchdog_interval_s()
        """Read once: systemd sets it in the environment before it starts us."""
        self._next_watchdog = 0.0
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def watchdog_interval_s(self) -> float | None:
        """Half the unit's WatchdogSec (systemd's advice), or None when no watchdog is armed for us."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2_000_000
        except ValueError:
            return None

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (e.g. ``"READY=1"``) in one datagram; False if not delivered."""
        if self._socket is None:
            return False
        address = self.address
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        try:
            self._socket.sendto("\n".join(fields).encode(), address)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        self._last_status = status
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        """Send STATUS= only when it changed: the state machine reports often."""
        if status == self._last_status:
            return True
        self._last_status = status
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def keep_alive(self, now: float) -> float | None:
        """WATCHDOG=1 once half the unit's WatchdogSec has passed since the last; returns when the next is due.

        ``now`` is on the caller's clock, which the return value is on too; None: no watchdog is armed.
        """
        if not self._watchdog_s:
            return None
        if now >= self._next_watchdog:
            self.watchdog()
            self._next_watchdog = now + self._watchdog_s
        return self._next_watchdog

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
