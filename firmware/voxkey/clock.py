"""The one clock every time-dependent rule reads, so tests move time instead of sleeping.

Button edges carry the time they happened; the gesture windows, the error
pattern's length and the main loop's wake-ups are measured against the same
clock. In the daemon that is ``time.monotonic`` (``MONOTONIC``); a test gives
a ``ManualClock`` and advances it, as gpiozero's mock pin factory carries its
own ``ticks()`` for the same reason.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since an arbitrary start, never going back."""

    def now(self) -> float: ...


class MonotonicClock:
    """``time.monotonic()``: what gpiozero's edge callbacks and the audio threads use too."""

    def now(self) -> float:
        return time.monotonic()


MONOTONIC = MonotonicClock()


class ManualClock:
    """A clock that moves only when told: rules that wait for a window are tested in microseconds."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds`` (never back) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self._now += seconds
        return self._now

    def set(self, at: float) -> None:
        """Move on to ``at``, which must not be in the past."""
        self.advance(at - self._now)
