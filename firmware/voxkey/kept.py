"""Kept text: text that waits for a host, and the rule that decides where it may go once one is there.

A keyboard types into whatever has the focus. Text kept while the host was
away must not land somewhere the user did not mean: in another computer the
cable was moved to, or in a lock screen's password field after the laptop
slept. So kept text resumes by itself only after a *short* absence from the
*same* host (a cable wiggle, a Bluetooth drop, a host that paused its
polling): at most ``output.resume_within_s``. After a longer absence, after
the USB host re-enumerated the gadget, or with another host (another
Bluetooth address, the other link of ``transport: both``) it is *held*: the
LED shows "text waiting", a tap types it into the host now there, a double
press (or the cancel button) drops it, and it expires after
``output.host_wait_s`` like any text waiting for a host.

``ResumePolicy`` is the rule, a pure function of durations and host
identities. ``KeptText`` is its state between the typist's thread (which
waits for hosts and asks) and the main loop (which carries out the user's
tap or cancel, and stops the daemon); times come from the injected clock.

A host identity is what a link can observe about the host, as a string: the
link's name and, for USB, how many times the link saw the gadget leave the
"configured"/"suspended" states (a re-enumeration: unplugged, another host,
a host reset), for Bluetooth the host's address. Links that can tell nothing
more (a terminal, uinput) give their name only: for them the time rule alone
decides.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from voxkey.clock import Clock
from voxkey.errors import KeptTextDropped

log = logging.getLogger(__name__)


class Resume(enum.Enum):
    """What to do with kept text now that a host is there."""

    TYPE = "type"
    """Type it: the same host, back soon enough (or the user said so)."""
    HOLD = "hold"
    """Wait for the user's tap (LED "text waiting")."""


@dataclass(frozen=True)
class ResumePolicy:
    """The rule of the module docstring, on durations in seconds and host identities."""

    resume_within_s: float

    def decide(self, away_s: float, meant_for: str | None, host_now: str) -> Resume:
        """``meant_for`` None: the text never met a host (nothing to compare, the time alone decides)."""
        same_host = meant_for is None or meant_for == host_now
        return Resume.TYPE if same_host and away_s <= self.resume_within_s else Resume.HOLD


class KeptText:
    """The kept-text state shared by the typist's thread and the main loop (thread-safe).

    The typist's side: ``host_gone`` when text has to wait for a host (or the
    host it typed to went away), ``host_ready`` when a host is there (it answers
    whether text may flow to it now), ``check`` while waiting (raises
    ``KeptTextDropped`` once the user dropped the text or the daemon stops),
    ``settled`` when the waiting text was delivered or dropped. The main loop's
    side: ``accept`` (the tap), ``drop`` (double press, cancel), ``stop``.
    ``on_held`` hears when text starts and stops being held (for the LED).
    """

    def __init__(self, policy: ResumePolicy, clock: Clock, on_held: Callable[[bool], None] | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self.on_held = on_held
        self.host: str | None = None
        """The host text went to last: kept text is meant for it."""
        self._away_since: float | None = None
        self._held_for: str | None = None
        self._accepted = False
        self._drop: str | None = None
        self._stopping = False
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        with self._lock:
            return self._held_for is not None

    @property
    def away_since(self) -> float | None:
        with self._lock:
            return self._away_since

    def host_gone(self, away_s: float = 0.0) -> None:
        """Text waits for a host from now, or from ``away_s`` ago (unless it already did)."""
        with self._lock:
            if self._away_since is None:
                self._away_since = self.clock.now() - away_s

    def host_ready(self, host: str) -> Resume:
        """A host is there: may text flow to it now? Raises ``KeptTextDropped`` if it was dropped meanwhile."""
        changed: bool | None = None
        with self._lock:
            if self._away_since is None:
                if self.host != host and self.host is not None:
                    log.info("typing to %s from now (was %s)", host, self.host)
                self.host = host  # nothing waited: fresh text goes to whoever is there
                return Resume.TYPE
            if self._drop is not None:
                self._raise_if_dropped()
            away_s = self.clock.now() - self._away_since
            decision = Resume.TYPE if self._accepted else self.policy.decide(away_s, self.host, host)
            if decision is Resume.HOLD and self._stopping:
                self._raise_if_dropped()  # stopping does not wait for a tap; text allowed to go still goes
            if decision is Resume.TYPE:
                log.info("kept text goes to %s (away %.1f s%s)", host, away_s, ", tapped" if self._accepted else "")
                changed = self._held_for is not None
                self.host, self._away_since, self._held_for, self._accepted = host, None, None, False
            elif self._held_for is None:
                changed = True
                self._held_for = host
                log.warning(
                    "text waiting: %s is back after %.1f s (text was meant for %s); tap to type it, "
                    "double press to drop it",
                    host,
                    away_s,
                    self.host or "no host",
                )
        if changed and self.on_held is not None:
            self.on_held(decision is Resume.HOLD)
        return decision

    def check(self) -> None:
        """While waiting: ``KeptTextDropped`` once the user dropped the text or the daemon stops."""
        with self._lock:
            self._raise_if_dropped()

    def settled(self) -> None:
        """The waiting text was delivered or dropped: nothing is kept any more."""
        with self._lock:
            was_held = self._held_for is not None
            self._away_since, self._held_for, self._accepted, self._drop = None, None, False, None
        if was_held and self.on_held is not None:
            self.on_held(False)

    def accept(self) -> bool:
        """The user's tap: type the held text into the host now there. False if nothing was held."""
        with self._lock:
            if self._held_for is None:
                return False
            self._accepted = True
            return True

    def drop(self, why: str) -> bool:
        """The user dropped the waiting text. False if no text was waiting."""
        with self._lock:
            if self._away_since is None:
                return False
            self._drop = why
            return True

    def stop(self) -> None:
        """The daemon stops: from now on no text waits for a host (it is logged, see ``Typist``)."""
        with self._lock:
            self._stopping = True

    def _raise_if_dropped(self) -> None:
        if self._drop is not None:
            why, self._drop = self._drop, None
            raise KeptTextDropped(why, by_user=True)
        if self._stopping:
            raise KeptTextDropped("voxkey is stopping", by_user=False)
