"""Button edges and time → what the user asked for: start, stop, abort, cancel, undo, eject, pair.

Every gesture rule lives here and nowhere else (the table is in ``voxkey.ui``'s
docstring). The interpreter is pure: it is told each edge together with a
``Situation`` (what the daemon is doing at that moment: is a recording running,
when did the last one stop, is pairing mode on) and answers with intents, in
the order the daemon must carry them out. Its own memory is only what a gesture
spans: taps in a row, an undo that waits for a possible third tap, a release
that belongs to a press already used for something else. Time comes from the
edges and, for the one rule that fires without an edge (two taps and no third),
from the injected clock, so every rule is tested without threads, audio or sleep.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from voxkey.clock import Clock
from voxkey.config import ButtonSettings
from voxkey.ui import ButtonEdge

# --- what the daemon tells: the situation at an edge ------------------------------------------------


@dataclass(frozen=True)
class RecordingView:
    """The recording in progress, as the gestures see it."""

    pressed_at: float
    stopped_at: float | None = None
    """When it was asked to stop (it is then only finishing its post-roll); None while listening."""
    speech_seen: bool = False
    """Voice was heard: a long press is then a dictation, not the pairing gesture."""

    @property
    def ending(self) -> bool:
        return self.stopped_at is not None


@dataclass(frozen=True)
class Situation:
    """What the daemon is doing when an edge arrives."""

    recording: RecordingView | None = None
    last_stopped_at: float | None = None
    """When the newest finished recording stopped; None if there is none or it was cancelled."""
    pairing: bool = False
    stopping: bool = False
    text_held: bool = False
    """Kept text waits for a tap (``voxkey.kept``): a press types it, two presses drop it."""


IDLE = Situation()


# --- what the interpreter answers: intents -----------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start listening; the recording began at ``at``."""

    at: float


@dataclass(frozen=True)
class Stop:
    """Stop listening at ``at``; what was said is transcribed and typed."""

    at: float


@dataclass(frozen=True)
class Cancel:
    """Cancel the recording, else the newest dictation not typed yet; what of it was typed is erased."""

    why: str
    eject_if_nothing: bool = False
    """``eject_gesture: cancel-button``: with nothing to cancel, send Eject instead."""


class Act(enum.Enum):
    """The intents that carry nothing but what they ask for."""

    ABORT = "abort"
    """Drop the recording in progress without a trace: it was a tap or a gesture, not a dictation."""
    CANCEL_STOPPED = "cancel-stopped"
    """Cancel the dictation that stopped last (a press right after it stopped)."""
    UNDO = "undo"
    """Erase exactly what the last dictation typed."""
    EJECT = "eject"
    """The media key Eject (brings back an iPad's on-screen keyboard)."""
    PAIR = "pair"
    """Enter Bluetooth pairing mode."""
    END_PAIRING = "end-pairing"
    """Leave Bluetooth pairing mode."""
    TYPE_KEPT = "type-kept"
    """Type the held kept text into the host that is there now (one press, no second within the window)."""
    DROP_KEPT = "drop-kept"
    """Drop the held kept text (two presses within ``double_press_s``)."""


Intent = Start | Stop | Cancel | Act

PRESS_AFTER_STOP = "press after stop"
CANCEL_BUTTON = "cancel button"


class GestureInterpreter:
    """Turns edges (and, for a pending undo, the clock) into intents; see the module docstring.

    ``settings`` and ``min_recording_s`` (presses shorter than it are taps) may
    be replaced between edges, when the config is reloaded.
    """

    def __init__(self, settings: ButtonSettings, clock: Clock, min_recording_s: float) -> None:
        self.settings = settings
        self.min_recording_s = min_recording_s
        self.clock = clock
        self.main_held = False
        """The main button is down now (a pending undo waits for its release)."""
        self._swallow_release = False
        self._taps = 0
        self._last_tap_release: float | None = None
        self._undo_due_at: float | None = None
        self._kept_due_at: float | None = None

    @property
    def kept_due_at(self) -> float | None:
        """When one press on held text becomes "type it" unless a second comes; None: no such wait."""
        return self._kept_due_at

    @property
    def undo_due_at(self) -> float | None:
        """When two taps become an undo unless a third comes (``eject_gesture: triple-tap``); None: no such wait."""
        return self._undo_due_at

    def edge(self, edge: ButtonEdge, situation: Situation) -> list[Intent]:
        if edge.button == "cancel":
            if edge.kind != "press":
                return []
            return [Cancel(CANCEL_BUTTON, eject_if_nothing=self.settings.eject_gesture == "cancel-button")]
        if edge.kind == "press":
            self.main_held = True
            return self._press(edge.at, situation)
        self.main_held = False
        return self._release(edge.at, situation)

    def due(self) -> list[Intent]:
        """Two taps and no third within the window: the undo they asked for.

        While the button is down its release decides (a third tap that outlasts
        the window is still a tap), so the clock waits for it.
        """
        if self._kept_due_at is not None and not self.main_held and self.clock.now() >= self._kept_due_at:
            self._kept_due_at = None
            return [Act.TYPE_KEPT]
        due_at = self._undo_due_at
        if due_at is not None and not self.main_held and self.clock.now() >= due_at:
            self._reset_taps()
            return [Act.UNDO]
        return []

    def recording_ended_by_itself(self) -> None:
        """It reached its length limit (or the audio failed) while held: that button's release is no gesture."""
        if self.main_held:
            self._swallow_release = True

    def _press(self, at: float, situation: Situation) -> list[Intent]:
        settings = self.settings
        if situation.stopping:
            return []
        if situation.pairing:
            self._swallow_release = True
            return [Act.END_PAIRING]
        if (situation.text_held or self._kept_due_at is not None) and situation.recording is None:
            return self._press_on_held_text(at)
        if settings.cancel_by_press_after_stop:
            cancel = self._cancel_in_window(at, situation)
            if cancel is not None:
                self._swallow_release = True
                return [cancel]
        recording = situation.recording
        if recording is None:
            return [Start(at)]
        if settings.mode == "hold" or recording.ending:
            return []  # a bounce, or a press while the post-roll finishes
        self._swallow_release = True
        if at - recording.pressed_at < settings.double_press_s:
            return [Act.ABORT, Act.UNDO]
        return [Stop(at)]

    def _press_on_held_text(self, at: float) -> list[Intent]:
        """Held kept text: a press types it once the window passed without a second press; two drop it."""
        self._swallow_release = True
        if self._kept_due_at is not None and at <= self._kept_due_at:
            self._kept_due_at = None
            return [Act.DROP_KEPT]
        self._kept_due_at = at + self.settings.double_press_s
        return []

    def _cancel_in_window(self, at: float, situation: Situation) -> Intent | None:
        """A press soon after a dictation stopped cancels it (what it typed already is erased)."""
        window = self.settings.double_press_s
        recording = situation.recording
        if recording is not None and recording.stopped_at is not None:  # still in its post-roll
            return Cancel(PRESS_AFTER_STOP) if 0 <= at - recording.stopped_at <= window else None
        stopped_at = situation.last_stopped_at
        if stopped_at is None or not 0 <= at - stopped_at <= window:
            return None
        return Act.CANCEL_STOPPED

    def _release(self, at: float, situation: Situation) -> list[Intent]:
        if self._swallow_release:
            self._swallow_release = False
            return []
        recording = situation.recording
        if recording is None or recording.ending:
            return []
        settings = self.settings
        held = at - recording.pressed_at
        is_tap = settings.mode == "hold" and held < self.min_recording_s
        intents: list[Intent] = []
        if self._undo_due_at is not None and not is_tap:
            self._reset_taps()  # not a third tap: the undo the two taps asked for goes before what this press does
            intents.append(Act.UNDO)
        if held >= settings.long_press_s and not recording.speech_seen:
            return [*intents, Act.ABORT, Act.PAIR]
        if settings.mode != "hold":
            return intents  # toggle/auto: releasing the start press changes nothing
        if is_tap:
            return [*intents, Act.ABORT, *self._tap(recording.pressed_at, at)]
        return [*intents, Stop(at)]

    def _tap(self, pressed_at: float, released_at: float) -> list[Intent]:
        """Taps in a row: two undo; with ``eject_gesture: triple-tap`` the undo waits one window for a third."""
        window = self.settings.double_press_s
        follows = self._last_tap_release is not None and pressed_at - self._last_tap_release <= window
        self._taps = self._taps + 1 if follows else 1
        self._last_tap_release = released_at
        if self._taps == 2 and self.settings.eject_gesture == "triple-tap":
            self._undo_due_at = released_at + window
            return []
        if self._taps < 2:
            return []
        third = self._taps == 3
        self._reset_taps()
        return [Act.EJECT] if third else [Act.UNDO]

    def _reset_taps(self) -> None:
        self._taps = 0
        self._last_tap_release = None
        self._undo_due_at = None
