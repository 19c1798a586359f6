"""What the user sees of the daemon: the LED and systemd's status line.

The daemon says which state it is in (``voxkey.status`` reads its ``Snapshot``);
this keeps what showing that needs over time: the light itself, one-shot
flashes over it, and how long an error stays on the LED. Used by the main loop
only.
"""

from __future__ import annotations

from voxkey.clock import Clock
from voxkey.config import LedSettings
from voxkey.notify import SystemdNotifier
from voxkey.status import Counters, status_text
from voxkey.ui import LightState, StatusLight

ERROR_SHOW_S = 3.0
"""An error stays on the LED this long, then the state underneath shows again."""


class StatusDisplay:
    """The status light (once opened) and the ``STATUS=`` line systemd shows in ``systemctl status``."""

    def __init__(self, notifier: SystemdNotifier, clock: Clock, counters: Counters) -> None:
        self.notifier = notifier
        self.clock = clock
        self.counters = counters
        self.light: StatusLight | None = None
        self.error_until = 0.0
        """Clock time until which the LED shows an error; the main loop wakes then to show what is under it."""

    def open(self, leds: LedSettings, state: LightState) -> None:
        """Open (or, after a reload, reopen) the light on ``leds``, showing ``state``."""
        self.close()
        self.light = StatusLight(leds)
        self.light.show(state)

    def show(self, state: LightState) -> None:
        if self.light is not None:
            self.light.show(state)
        self.notifier.status(self.text(state))

    def text(self, state: LightState) -> str:
        return status_text(state, self.counters)

    def flash(self, state: LightState) -> None:
        if self.light is not None:
            self.light.flash(state)

    def show_error(self) -> None:
        self.error_until = self.clock.now() + ERROR_SHOW_S

    def close(self) -> None:
        if self.light is not None:
            self.light.close()
            self.light = None
