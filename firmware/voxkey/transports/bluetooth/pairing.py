"""Pairing mode's time window, and what a failed or cancelled pairing does to it: nothing.

Decision (issue 12): a pairing the host aborts does not end pairing mode.
The window stays open for the time it has left, the LED keeps showing
pairing, and the host may try again; only a bond or the end of the window
closes it. Hosts abort for reasons of their own (BlueZ's ``Pair()`` failed
with "Not paired" in 1 of 4 runs in the test guest, a race on the host's
side), and the user, still holding the host, retries at once: closing the
window would make them go back to the keyboard for a long press.

``PairingWindow`` is pure bookkeeping with an injectable clock, so the rules
are tested without waiting. ``PairingMode`` runs one window on the
peripheral's loop: the adapter's Pairable flag, the asyncio timer that closes
the window, and the future the caller of ``start_pairing`` waits on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dbus_fast import Variant

from voxkey.errors import BluetoothError
from voxkey.transports.bluetooth.adapter import AdapterSession
from voxkey.transports.bluetooth.loop_thread import LoopThread

log = logging.getLogger(__name__)


@dataclass
class PairingWindow:
    """One period of pairing mode: opened now, closes ``timeout_s`` later unless a host bonds first."""

    timeout_s: float
    clock: Callable[[], float] = time.monotonic
    opened_at: float = field(init=False)
    failed_attempts: list[str] = field(default_factory=list)
    """Who aborted a pairing while the window was open, in order (for the log and the tests)."""

    def __post_init__(self) -> None:
        self.opened_at = self.clock()

    def remaining_s(self) -> float:
        return max(0.0, self.opened_at + self.timeout_s - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining_s() <= 0

    def attempt_failed(self, host: str, why: str) -> str:
        """Note an aborted pairing; returns the log line that tells the user the window is still open."""
        self.failed_attempts.append(host)
        return (
            f"pairing with {host} did not complete ({why}); pairing mode stays on for "
            f"{self.remaining_s():.0f} s more: pair again from the host"
        )


@dataclass
class PairingMode:
    """Whether voxkey is pairing now, and the window, timer and waiting caller of the current period.

    Lives on the peripheral's loop thread: ``active`` is read from other
    threads (the agent, ``host_allowed``) only as a plain flag. What pairing
    mode *means* for the hosts (a new host is bonded, strangers may stay) is
    the policy's business; ``reevaluate`` is how a change here reaches it.
    """

    session: AdapterSession
    runner: LoopThread
    reevaluate: Callable[[], Coroutine[Any, Any, None]]
    clock: Callable[[], float] = time.monotonic
    """What the window is timed by (tests pass a fake one)."""
    active: bool = field(default=False, init=False)
    """Pairing mode is on: the adapter is pairable and the agent accepts new hosts."""
    window: PairingWindow | None = field(default=None, init=False)
    """The current period, or the last one once it ended (its failed attempts stay readable)."""
    _timer: asyncio.TimerHandle | None = field(default=None, init=False)
    _result: concurrent.futures.Future[str | None] | None = field(default=None, init=False)

    async def open(self, timeout_s: float) -> concurrent.futures.Future[str | None]:
        """Make the adapter pairable and start the window; the future resolves to the bonded address or None.

        Opening again while open starts a new window but keeps the caller's
        future: whoever waits for the first period learns how pairing ended.
        """
        if self._result is None or self._result.done():
            self._result = concurrent.futures.Future()
        result = self._result
        self.active = True
        self.window = PairingWindow(timeout_s, self.clock)
        await self.session.set("Pairable", Variant("b", True))
        self._arm_timer()
        return result

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        window = self.window
        delay = window.remaining_s() if window is not None else 0.0
        self._timer = self.runner.require().call_later(delay, self.deadline)

    def deadline(self) -> None:
        """The timer fired: close the window if its own clock agrees, else wait for the rest."""
        self._timer = None
        window = self.window
        if not self.active or window is None:
            return
        if window.expired:
            self.runner.spawn(self.close(None))
        else:
            self._arm_timer()

    def attempt_failed(self, host: str, why: str) -> None:
        """A host gave up on pairing: the window stays open (see the module docstring), and the log says so."""
        window = self.window
        if self.active and window is not None and not window.expired:
            log.warning("bluetooth: %s", window.attempt_failed(host, why))

    async def close(self, bonded: str | None, reevaluate: bool = True) -> None:
        """End pairing mode: with the new host's address, or None when the window closed (or was closed) empty."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.active:
            return
        self.active = False
        try:
            await self.session.set("Pairable", Variant("b", False))
        except BluetoothError as exc:
            log.warning("bluetooth: %s", exc)
        if bonded:
            log.info("bluetooth: bonded with %s; pairing mode off", bonded)
        else:
            log.info("bluetooth: pairing mode ended without a new host")
        if self._result is not None and not self._result.done():
            self._result.set_result(bonded)
        if reevaluate:
            await self.reevaluate()
