"""Pairing mode's time window, and what a failed or cancelled pairing does to it: nothing.

Decision (issue 12): a pairing the host aborts does not end pairing mode.
The window stays open for the time it has left, the LED keeps showing
pairing, and the host may try again; only a bond or the end of the window
closes it. Hosts abort for reasons of their own (BlueZ's ``Pair()`` failed
with "Not paired" in 1 of 4 runs in the test guest, a race on the host's
side), and the user, still holding the host, retries at once: closing the
window would make them go back to the keyboard for a long press.

Pure bookkeeping with an injectable clock, so the rules are tested without
waiting; ``BluetoothPeripheral`` owns the asyncio timer and the adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


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
