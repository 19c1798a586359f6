"""What every keyboard transport shares: typing text exactly once.

A transport is split in two. A ``ReportLink`` moves single HID reports over one
kind of wire (the USB gadget, a Bluetooth LE connection, a terminal) and knows
whether a host is there. ``Keyboard`` owns the text: it keeps every character
that the host has not yet received, turns characters into reports only when it
is about to send them (so the host's Caps Lock state at that moment counts),
and when the link drops it either counts the character in flight as typed (its
presses reached the host) or rewinds to its start, so typing resumes with
nothing lost and nothing repeated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from voxkey.errors import HostUnavailableError, UnsupportedCharacterError
from voxkey.hid import LED_CAPS_LOCK, RELEASE_ALL
from voxkey.keymap import Layout, caps_lock_toggles, reports_for_strokes

if TYPE_CHECKING:
    from voxkey.kept import KeptText

log = logging.getLogger(__name__)

RECENT_CHARACTERS = 128
"""Delivered characters remembered with their reports: more than a Bluetooth window (64 reports) can hold."""
CAPS_LOCK_SETTLE_S = 0.5
"""After voxkey itself pressed Caps Lock, how long the host's LED reports may lag behind the keys."""


class LinkDown(Exception):
    """The host went away while a report was being sent.

    Raised by links only; ``Keyboard`` turns it into a rewind. The report that
    failed was not delivered. Whether the report sent just before it reached the
    host is the link's evidence to give (``previous_delivered``): a character
    whose presses all arrived is typed on the host even if its release was lost,
    because a host releases the keys of a keyboard that vanishes.
    """

    def __init__(self, message: str, previous_delivered: bool = False, away_s: float = 0.0) -> None:
        super().__init__(message)
        self.previous_delivered = previous_delivered
        self.away_s = away_s
        """How long the host had already been away when the link found out (a host that slept, then woke)."""


class ReportLink(Protocol):
    """One wire that carries keyboard reports to a host."""

    name: str

    def wait_for_host(self, deadline: float | None) -> None:
        """Block until a host is connected and ready; ``HostUnavailableError`` once ``deadline`` passes."""

    def send(self, report: bytes, deadline: float | None) -> None:
        """Deliver one report, or raise ``LinkDown`` (host gone) or ``HostUnavailableError`` (deadline)."""

    def led_state(self) -> int:
        """The host's keyboard LEDs (Num/Caps/Scroll Lock bits) as last reported."""

    def release_all(self) -> None:
        """Best effort, never raises: leave no key held on the host."""

    def close(self) -> None: ...


@runtime_checkable
class MediaKeyLink(Protocol):
    """A link whose host also takes consumer-control keys (media keys such as Eject).

    Separate from ``ReportLink`` because the USB gadget is a boot keyboard with
    one report format and no media keys; Bluetooth and uinput have them.
    """

    name: str

    def send_consumer(self, usage: int, deadline: float | None) -> None:
        """Press and release one consumer-page usage; ``TransportError`` if this host cannot take it."""


@runtime_checkable
class HostIdentity(Protocol):
    """A link that can tell which host is there, without sending anything (for ``voxkey.kept``).

    USB: how many times the link saw the gadget re-enumerated; Bluetooth: the host's address.
    """

    name: str

    def host_id(self) -> str | None:
        """The ready host's identity as this link sees it; None while no host is there."""


@runtime_checkable
class KeepsReports(Protocol):
    """A link that keeps reports of its own for a host that left (Bluetooth's replay): kept text, too."""

    kept: KeptText | None
    """Set by ``HostLink``: the link asks it before it sends kept reports to a host that came back."""

    def discard_kept(self) -> list[bytes]:
        """Drop the reports kept for a host that left (the newest reports it was given); return them."""


class Keyboard:
    """Types text through a link, keeping undelivered characters until a host takes them."""

    def __init__(self, link: ReportLink, layout: Layout, host_wait_s: float | None = None) -> None:
        self.link = link
        self.layout = layout
        self.host_wait_s = host_wait_s
        self.delivered_chars = 0
        self._pending: deque[str] = deque()
        self._in_flight: list[bytes] | None = None
        self._sent = 0
        self._lock = threading.RLock()
        self._caps_lock_after_in_flight: bool | None = None
        self._own_caps_lock: tuple[bool, float] | None = None
        self._recent: deque[tuple[str, list[bytes]]] = deque(maxlen=RECENT_CHARACTERS)
        """The last characters counted as delivered, with their reports: see ``unsend``."""

    @property
    def pending_text(self) -> str:
        """Characters accepted but not yet delivered to a host, in order."""
        return "".join(self._pending)

    def type(self, text: str) -> None:
        """Queue ``text`` after whatever is still pending and deliver all of it.

        Raises ``UnsupportedCharacterError`` before queuing anything when the
        layout cannot type a character, and ``HostUnavailableError`` when no host
        took the text within ``host_wait_s``: the text then stays pending and the
        next call (or ``flush``) delivers it first.
        """
        missing = self.layout.unsupported(text)
        if missing:
            raise UnsupportedCharacterError(missing[0], self.layout.name)
        with self._lock:
            self._pending.extend(text)
            self.flush()

    def flush(self) -> None:
        """Deliver every pending character (see ``type``).

        ``host_wait_s`` bounds the time without progress, not the whole text: a
        long text over a slow link, with the host unplugged and back a few
        times, may take any time as long as the host keeps taking characters.
        """
        with self._lock:
            deadline = self._wait_deadline()
            while self._pending:
                delivered = self.delivered_chars
                try:
                    self._deliver_first(deadline)
                except LinkDown as exc:
                    self._link_dropped(exc)
                except HostUnavailableError as exc:
                    raise HostUnavailableError(f"{exc}; {len(self._pending)} characters kept for later") from exc
                except Exception:
                    # A failing link (not a host that left) may have delivered a press and never its
                    # release: the host would auto-repeat that key. The text and the character in flight
                    # are kept as they are, so the next flush resumes exactly where this one stopped.
                    self.link.release_all()
                    raise
                if self.delivered_chars != delivered:
                    deadline = self._wait_deadline()

    def _wait_deadline(self) -> float | None:
        return None if self.host_wait_s is None else time.monotonic() + self.host_wait_s

    def unsend(self, reports: list[bytes]) -> str:
        """The link threw away ``reports``, the newest it was given: un-count the characters they carried.

        Bluetooth counts a report as sent when it is written, and keeps the unacknowledged ones for
        its host (``KeepsReports``); when that kept text is dropped, the characters whose presses were
        among them never arrived and must not count as delivered (undo would erase too much). A
        character whose presses arrived and only its release was kept did arrive. Stops at the first
        report that is not this keyboard's (a key command or media key sent past it): those are not
        text. Returns the characters un-counted, in order. Call it before ``discard_pending``.
        """
        with self._lock:
            rest = list(reports)
            if self._in_flight is not None and self._sent:  # the character in flight never counted
                sent = self._in_flight[: self._sent]
                if rest[-len(sent) :] != sent:
                    return ""
                del rest[-len(sent) :]
            lost: list[str] = []
            while rest and self._recent:
                char, char_reports = self._recent[-1]
                tail = char_reports[-min(len(char_reports), len(rest)) :]
                if rest[-len(tail) :] != tail or all(report == RELEASE_ALL for report in tail):
                    break
                lost.append(char)
                self._recent.pop()
                self.delivered_chars -= 1
                del rest[-len(tail) :]
            return "".join(reversed(lost))

    def discard_pending(self) -> str:
        """Drop undelivered text (a user cancelled it) and return it."""
        with self._lock:
            text = self.pending_text
            self._pending.clear()
            self._rewind()
            return text

    def close(self) -> None:
        with self._lock:
            self.link.release_all()
            self.link.close()

    def __enter__(self) -> Keyboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _deliver_first(self, deadline: float | None) -> None:
        if self._in_flight is None:
            self.link.wait_for_host(deadline)
            caps_lock = self._host_caps_lock()
            strokes = self.layout.strokes_for(self._pending[0], caps_lock)
            toggles = caps_lock_toggles(strokes)
            self._caps_lock_after_in_flight = caps_lock ^ (toggles % 2 == 1) if toggles else None
            self._in_flight = list(reports_for_strokes(strokes))
            self._sent = 0
        while self._sent < len(self._in_flight):
            self.link.send(self._in_flight[self._sent], deadline)
            self._sent += 1
        self._finish_in_flight()

    def _host_caps_lock(self) -> bool:
        """The host's Caps Lock: our own recent toggles win over LED reports still on their way."""
        leds = self.link.led_state()
        if self._own_caps_lock is not None and time.monotonic() < self._own_caps_lock[1]:
            return self._own_caps_lock[0]
        self._own_caps_lock = None
        return bool(leds & LED_CAPS_LOCK)

    def _link_dropped(self, exc: LinkDown) -> None:
        """Settle the character in flight: done if every press reached the host, else typed again."""
        if self._in_flight is not None:
            delivered = self._sent if exc.previous_delivered else max(self._sent - 1, 0)
            if all(report == RELEASE_ALL for report in self._in_flight[delivered:]):
                self._finish_in_flight()
        log.warning("%s: host gone (%s); %d characters kept", self.link.name, exc, len(self._pending))
        self._rewind()

    def _finish_in_flight(self) -> None:
        if self._caps_lock_after_in_flight is not None:
            self._own_caps_lock = (self._caps_lock_after_in_flight, time.monotonic() + CAPS_LOCK_SETTLE_S)
        self._recent.append((self._pending.popleft(), self._in_flight or []))
        self._in_flight = None
        self.delivered_chars += 1

    def _rewind(self) -> None:
        self._in_flight = None
        self._sent = 0
