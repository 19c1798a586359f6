"""The user's dealings with hosts besides typing: pairing a new one, saying its code, and kept text.

The main loop hands this room the events about hosts (typing waits for one,
kept text is held for a press, pairing mode ended, a host wants its code or
gave up) and the intents that concern them (pair, end pairing, type or drop
the kept text). It answers what the gestures and the LED need to know. Used by
the main loop only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from voxkey.display import StatusDisplay
from voxkey.errors import VoxkeyError
from voxkey.kept import KeptText
from voxkey.passkey import PasskeyEntry, PasskeyRequest, PasskeyWanted, PasskeyWithdrawn, SpokenPasskey
from voxkey.status import Counters
from voxkey.transports.host import Links, PairingEnded, PairingMode
from voxkey.typist import HostWaiting, TextHeld
from voxkey.ui import LightState

log = logging.getLogger(__name__)

HostEvent = HostWaiting | TextHeld | PairingEnded | PasskeyWanted | PasskeyWithdrawn


class HostSession:
    """Pairing mode, the spoken passkey and the kept text's press or drop, with what the LED shows of them."""

    def __init__(self, post: Callable[[Any], None], kept: KeptText, display: StatusDisplay, counters: Counters) -> None:
        self.pairing = PairingMode(post)
        self.passkey = SpokenPasskey(post)
        self.kept = kept
        self.display = display
        self.counters = counters
        self.waiting_for_host = False
        """Typing is blocked until a host is there (the typist said so)."""
        self.text_held = False
        """Kept text waits for the user's press (``voxkey.kept``)."""

    def use(self, links: Links) -> None:
        """Newly opened links: pairing mode drives theirs, and a passkey request comes to the spoken code."""
        self.pairing.control = links.pairing
        if isinstance(links.pairing, PasskeyEntry):
            links.pairing.set_passkey_source(self.passkey.request)

    @property
    def pairing_gesture(self) -> bool:
        """A press ends pairing mode, unless a host waits for its code: then the press records the code."""
        return self.pairing.active and not self.passkey.waiting

    def handle(self, event: HostEvent) -> None:
        match event:
            case HostWaiting(waiting=waiting):
                self.waiting_for_host = waiting
            case TextHeld(held=held):
                self.text_held = held
            case PairingEnded():
                if self.pairing.ended(event) and event.error is not None:
                    log.error("pairing mode failed: %s", event.error)
                    self.display.show_error()
            case PasskeyWanted(request=request):
                self.passkey.wanted(request)
            case PasskeyWithdrawn(request=request):
                self.passkey.withdrawn(request)

    def start_pairing(self) -> None:
        try:
            self.pairing.start()
        except VoxkeyError as exc:
            log.error("%s", exc)
            self.display.show_error()
            return
        self.counters.pairing += 1

    def code_heard(self, text: str, said_for: PasskeyRequest | None) -> None:
        """A code recording was transcribed: the agent answers BlueZ, or the user hears "say it again"."""
        if not self.passkey.heard(text, said_for):
            self.display.flash(LightState.CODE_RETRY)

    def type_kept(self) -> None:
        if self.kept.accept():
            log.info("tap: typing the kept text into the host that is there")

    def drop_kept(self, why: str) -> None:
        if self.kept.drop(why):
            self.counters.cancelled += 1
            self.display.flash(LightState.CANCELLED)

    def stop(self) -> None:
        """The daemon stops: pairing mode ends, and kept text is logged instead of waited for."""
        self.kept.stop()
        if self.pairing.active:
            self.pairing.stop()

    def close(self) -> None:
        self.passkey.close()
        if self.pairing.active:
            self.pairing.stop()
