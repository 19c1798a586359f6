"""What the LED and systemd's STATUS= line say: a pure function of a snapshot of the daemon.

The daemon takes a ``Snapshot`` once per turn of its loop and shows what
``light_state`` makes of it; nothing here changes the daemon (pairing mode's
end, for one, reaches the daemon as an event before it shows here).
"""

from __future__ import annotations

from dataclasses import dataclass

from voxkey.ui import LightState


@dataclass
class Counters:
    """What happened since start; the soak test and STATUS= read these (only the main loop writes them)."""

    dictations: int = 0
    typed: int = 0
    cancelled: int = 0
    undone: int = 0
    ejected: int = 0
    empty: int = 0
    errors: int = 0
    pairing: int = 0


@dataclass(frozen=True)
class Snapshot:
    """The daemon's state as the LED shows it, most important first."""

    listening: bool = False
    """A recording runs and has not been asked to stop."""
    pairing: bool = False
    passkey_wanted: bool = False
    """A host shows a pairing code and waits for the user to say it."""
    waiting_for_host: bool = False
    """Typing is blocked until a host is there."""
    text_held: bool = False
    """Kept text waits for the user's tap before it goes to the host now there (``voxkey.kept``)."""
    typing: bool = False
    in_flight: bool = False
    """Something said is not typed yet: a recording finishing, transcribing, or waiting its turn to be typed."""
    speech_server_down: bool = False
    """``asr.remote`` is on and its server is down: dictation is transcribed on the device meanwhile."""
    error_until: float = 0.0
    """The error pattern shows until then (a failure that did not stop the daemon)."""
    now: float = 0.0


def light_state(snapshot: Snapshot) -> LightState:
    """The one lasting state the LED shows for ``snapshot`` (one-shot flashes play over it)."""
    if snapshot.listening:
        return LightState.LISTENING
    if snapshot.passkey_wanted:
        return LightState.SAY_CODE
    if snapshot.pairing:
        return LightState.PAIRING
    if snapshot.text_held:
        return LightState.TEXT_WAITING
    if snapshot.waiting_for_host:
        return LightState.WAITING_FOR_HOST
    if snapshot.typing:
        return LightState.TYPING
    if snapshot.in_flight:
        return LightState.TRANSCRIBING
    if snapshot.now < snapshot.error_until:
        return LightState.ERROR
    if snapshot.speech_server_down:
        return LightState.ON_DEVICE
    return LightState.IDLE


def status_text(state: LightState, counters: Counters) -> str:
    """systemd's STATUS= line: the state and what happened since start."""
    c = counters
    return f"{state.value}; {c.dictations} dictations, {c.typed} typed, {c.cancelled} cancelled, {c.undone} undone"
