"""The links the daemon types over, as one: ``transport: both``, "waiting for the host", pairing.

``Links`` is what opening the transports gives the daemon (``voxkey.wiring.build_links``):
the links in order of preference and, when Bluetooth is among them, its pairing
control for the long-press gesture. ``HostLink`` is a ``ReportLink`` over those
links that types to whichever host is there; ``PairingMode`` is pairing as the
button sees it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from voxkey.errors import HostUnavailableError, TransportError, VoxkeyError
from voxkey.kept import KeptText, Resume
from voxkey.transports.base import HostIdentity, KeepsReports, LinkDown, MediaKeyLink, ReportLink

log = logging.getLogger(__name__)


class PairingControl(Protocol):
    """What the daemon needs from the Bluetooth side for the long-press gesture (``BluetoothPeripheral``)."""

    def start_pairing(self) -> concurrent.futures.Future[Any]:
        """Pairable and discoverable now; the future is done when pairing mode ends (a host bonded, timeout)."""

    def stop_pairing(self) -> None: ...


@dataclass(frozen=True)
class PairingEnded:
    """Pairing mode number ``round`` ended on the Bluetooth side (a host bonded, its timeout passed, or it failed)."""

    round: int
    error: BaseException | None = None


class PairingMode:
    """Pairing mode as the button sees it: on with a long press, off with a press, or ended by BlueZ.

    The end that BlueZ decides arrives as a ``PairingEnded`` event through
    ``post`` (from the Bluetooth thread); the main loop hands it to ``ended``.
    Used by the main loop only.
    """

    def __init__(self, post: Callable[[PairingEnded], None]) -> None:
        self.post = post
        self.control: PairingControl | None = None
        """Set whenever the links are built: Bluetooth's pairing, or None without a Bluetooth link."""
        self.active = False
        self._round = 0

    def start(self) -> None:
        """Pairable and discoverable now; ``VoxkeyError`` if there is no Bluetooth or it cannot start."""
        if self.control is None:
            raise TransportError("long press: Bluetooth pairing needs output.transport bluetooth or both")
        ended = self.control.start_pairing()
        self.active = True
        self._round += 1
        round_ = self._round

        def on_end(future: concurrent.futures.Future[Any]) -> None:
            self.post(PairingEnded(round_, None if future.cancelled() else future.exception()))

        ended.add_done_callback(on_end)
        log.info("Bluetooth pairing mode: pair from the host now; press the button to leave")

    def stop(self) -> None:
        """Leave pairing mode (a press, or the daemon stopping)."""
        self.active = False
        if self.control is not None:
            with contextlib.suppress(VoxkeyError):
                self.control.stop_pairing()
        log.info("pairing mode left")

    def ended(self, event: PairingEnded) -> bool:
        """Bluetooth ended pairing mode; False if that mode had been left already (or a newer one runs)."""
        if event.round != self._round or not self.active:
            return False
        self.active = False
        if event.error is None:
            log.info("pairing mode ended")  # a host bonded, or the pairing timeout passed
        return True


@dataclass(frozen=True)
class Links:
    """The keyboard links ``output.transport`` asks for, in order of preference, and their pairing control."""

    links: list[ReportLink]
    pairing: PairingControl | None = None
    """Bluetooth's pairing mode, when a Bluetooth link is among ``links``."""


class HostLink:
    """A ``ReportLink`` over one or more links, preferring the first that has a host.

    With ``transport: both`` the USB gadget and Bluetooth are both offered and
    text goes to whichever host is connected (``prefer`` breaks ties). It also
    tells the daemon when typing is blocked waiting for a host, for the LED.
    With ``kept`` (the daemon's), text that waited for a host goes only where
    ``voxkey.kept`` allows: a host that is back but not admitted counts as not
    there, and a host leaving mid-text starts the absence. Used by the
    typist's thread only.
    """

    POLL_S = 0.1

    def __init__(
        self, links: list[ReportLink], on_waiting: Callable[[bool], None], kept: KeptText | None = None
    ) -> None:
        if not links:
            raise TransportError("no keyboard transport configured; set output.transport")
        self.links = links
        self.name = "+".join(link.name for link in links)
        self.active: ReportLink = links[0]
        self.on_waiting = on_waiting
        self.kept = kept
        for link in links:
            if isinstance(link, KeepsReports):
                link.kept = kept

    def _first_ready(self) -> ReportLink | None:
        """The first link with a host that may be typed to now; None if none.

        A link whose host is there but cannot be typed to (a Bluetooth host whose stack drops key
        reports, ``hostcompat``) is passed over while another link has a host; alone, its error is raised,
        so the user hears why nothing is typed instead of waiting for a host that is already there.
        """
        refused: TransportError | None = None
        for link in self.links:
            if self.kept is not None and isinstance(link, HostIdentity):
                host = link.host_id()
                if host is None:
                    continue
                # Admitted before the link is asked: asking may already send it what it kept (Bluetooth).
                if self.kept.host_ready(f"{link.name}:{host}") is Resume.HOLD:
                    continue
            try:
                link.wait_for_host(time.monotonic())
            except HostUnavailableError:
                continue
            except TransportError as exc:
                refused = refused or exc
                continue
            if (
                self.kept is not None
                and not isinstance(link, HostIdentity)
                and self.kept.host_ready(link.name) is Resume.HOLD
            ):
                continue
            return link
        if refused is not None:
            raise refused
        return None

    def wait_for_host(self, deadline: float | None) -> None:
        ready = self._first_ready()
        if ready is None:
            if self.kept is not None:
                self.kept.host_gone()
            self.on_waiting(True)
            try:
                while ready is None:
                    if self.kept is not None:
                        self.kept.check()
                    if deadline is not None and time.monotonic() >= deadline:
                        names = ", ".join(link.name for link in self.links)
                        raise HostUnavailableError(f"no host connected ({names})")
                    time.sleep(self.POLL_S)
                    ready = self._first_ready()
            finally:
                self.on_waiting(False)
        if ready is not self.active:
            log.info("typing over %s", ready.name)
            self.active = ready

    def send(self, report: bytes, deadline: float | None) -> None:
        try:
            self.active.send(report, deadline)
        except LinkDown as exc:
            if self.kept is not None:
                self.kept.host_gone(exc.away_s)  # the rest is kept text now, even if another link has a host at once
            raise

    def discard_kept(self) -> list[bytes]:
        """Drop what the links keep of their own for a host that left (see ``KeepsReports``); return it."""
        return [report for link in self.links if isinstance(link, KeepsReports) for report in link.discard_kept()]

    def send_consumer(self, usage: int, deadline: float | None) -> None:
        """A media key to the active host; the USB boot keyboard and the terminal have none."""
        link = self.active
        if not isinstance(link, MediaKeyLink):
            raise TransportError(
                f"the {link.name} keyboard typing now has no media keys; Eject goes to a bluetooth or uinput host"
            )
        link.send_consumer(usage, deadline)

    def led_state(self) -> int:
        return self.active.led_state()

    def release_all(self) -> None:
        for link in self.links:
            link.release_all()

    def close(self) -> None:
        for link in self.links:
            with contextlib.suppress(Exception):
                link.close()
