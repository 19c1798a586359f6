"""Every gesture rule, as a table: button edges at given times in a given situation → intents.

No threads, no audio, no whisper, no sleep: the interpreter is told the time
of each edge, and its one timed rule (two taps wait for a third) reads a
``ManualClock``. Each row is a script of steps; each step says what happened
at which time, what the daemon was doing then, and the intents it must get.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from voxkey.clock import ManualClock
from voxkey.config import ButtonSettings
from voxkey.gestures import (
    CANCEL_BUTTON,
    IDLE,
    PRESS_AFTER_STOP,
    Act,
    Cancel,
    GestureInterpreter,
    Intent,
    RecordingView,
    Situation,
    Start,
    Stop,
)
from voxkey.ui import ButtonEdge

MIN_RECORDING_S = 0.3
WINDOW = 0.5  # button.double_press_s (binary-exact, so the window's bounds are tested exactly)
LONG = 3.0  # button.long_press_s

What = Literal["press", "release", "cancel", "cancel-release", "tick", "ended"]


@dataclass(frozen=True)
class Step:
    at: float
    what: What
    situation: Situation
    intents: list[Intent]


def rec(pressed_at: float, stopped_at: float | None = None, speech: bool = False) -> Situation:
    """A recording that started at ``pressed_at`` (asked to stop at ``stopped_at``)."""
    return Situation(recording=RecordingView(pressed_at, stopped_at, speech))


def after(stopped_at: float) -> Situation:
    """Nothing recording; the last dictation stopped at ``stopped_at`` and was not cancelled."""
    return Situation(last_stopped_at=stopped_at)


def play(steps: list[Step], min_recording_s: float = MIN_RECORDING_S, **settings: Any) -> GestureInterpreter:
    clock = ManualClock()
    interpreter = GestureInterpreter(ButtonSettings(**settings), clock, min_recording_s)
    for number, step in enumerate(steps):
        clock.set(step.at)
        if step.what == "tick":
            got = interpreter.due()
        elif step.what == "ended":
            interpreter.recording_ended_by_itself()
            got = []
        else:
            button = "cancel" if step.what.startswith("cancel") else "main"
            kind = "release" if step.what.endswith("release") else "press"
            got = interpreter.edge(ButtonEdge(kind, step.at, button), step.situation)
        assert got == step.intents, f"step {number} ({step.what} at {step.at}): {got}"
    return interpreter


HOLD: dict[str, list[Step]] = {
    "press starts, release stops": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(2.0, "release", rec(0.0), [Stop(2.0)]),
    ],
    "a press while the button is held (a bounce) does nothing": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.5, "press", rec(0.0), []),
        Step(2.0, "release", rec(0.0), [Stop(2.0)]),
    ],
    "a lone tap is dropped and types nothing": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.05, "release", rec(0.0), [Act.ABORT]),
        Step(5.0, "tick", IDLE, []),
    ],
    "two taps within the window undo": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.05, "release", rec(0.0), [Act.ABORT]),
        Step(0.15, "press", IDLE, [Start(0.15)]),
        Step(0.2, "release", rec(0.15), [Act.ABORT, Act.UNDO]),
    ],
    "the window runs from the first release to the second press, bounds included": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.25, "release", rec(0.0), [Act.ABORT]),
        Step(0.25 + WINDOW, "press", IDLE, [Start(0.25 + WINDOW)]),
        Step(0.25 + WINDOW + 0.1, "release", rec(0.25 + WINDOW), [Act.ABORT, Act.UNDO]),
    ],
    "two taps further apart than the window are two lone taps": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.05, "release", rec(0.0), [Act.ABORT]),
        Step(0.6, "press", IDLE, [Start(0.6)]),
        Step(0.65, "release", rec(0.6), [Act.ABORT]),
    ],
    "a tap then a dictation is no undo": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.05, "release", rec(0.0), [Act.ABORT]),
        Step(0.25, "press", IDLE, [Start(0.25)]),
        Step(0.75, "release", rec(0.25), [Stop(0.75)]),
    ],
    "three taps are one undo and one lone tap (no eject gesture)": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.05, "release", rec(0.0), [Act.ABORT]),
        Step(0.1, "press", IDLE, [Start(0.1)]),
        Step(0.15, "release", rec(0.1), [Act.ABORT, Act.UNDO]),
        Step(0.2, "press", IDLE, [Start(0.2)]),
        Step(0.25, "release", rec(0.2), [Act.ABORT]),
    ],
    "a long press with nothing said enters pairing": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(LONG, "release", rec(0.0), [Act.ABORT, Act.PAIR]),
    ],
    "a long press with speech is a dictation": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(LONG + 1, "release", rec(0.0, speech=True), [Stop(LONG + 1)]),
    ],
    "a press leaves pairing, and its release is no gesture": [
        Step(10.0, "press", Situation(pairing=True), [Act.END_PAIRING]),
        Step(10.05, "release", IDLE, []),
    ],
    "a press in the post-roll within the window cancels the recording": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(2.0, "release", rec(0.0), [Stop(2.0)]),
        Step(2.0 + WINDOW, "press", rec(0.0, stopped_at=2.0), [Cancel(PRESS_AFTER_STOP)]),
        Step(2.0 + WINDOW + 0.1, "release", IDLE, []),
    ],
    "a press after the recording ended, within the window, cancels that dictation": [
        Step(2.2, "press", after(2.0), [Act.CANCEL_STOPPED]),
        Step(2.3, "release", IDLE, []),
    ],
    "a press after the window starts a new dictation": [
        Step(2.75, "press", after(2.0), [Start(2.75)]),
    ],
    "a press in a post-roll outside the window waits for it": [
        Step(2.75, "press", rec(0.0, stopped_at=2.0), []),
        Step(2.8, "release", rec(0.0, stopped_at=2.0), []),
    ],
    "a recording that ended while held: its release is no gesture": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(300.0, "ended", IDLE, []),
        Step(301.0, "release", after(300.0), []),
        Step(302.0, "press", IDLE, [Start(302.0)]),
    ],
    "a recording that ended after the release leaves the next release alone": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(2.0, "release", rec(0.0), [Stop(2.0)]),
        Step(2.3, "ended", IDLE, []),
        Step(5.0, "press", after(2.0), [Start(5.0)]),
        Step(7.0, "release", rec(5.0), [Stop(7.0)]),
    ],
    "while stopping, presses do nothing": [
        Step(0.0, "press", Situation(stopping=True), []),
    ],
    "the cancel button cancels; its release does nothing": [
        Step(1.0, "cancel", rec(0.0), [Cancel(CANCEL_BUTTON)]),
        Step(1.1, "cancel-release", rec(0.0), []),
    ],
}


@pytest.mark.parametrize("steps", HOLD.values(), ids=HOLD.keys())
def test_hold_mode(steps: list[Step]) -> None:
    play(steps, mode="hold", double_press_s=WINDOW, long_press_s=LONG)


def test_press_after_stop_can_be_turned_off() -> None:
    play([Step(2.2, "press", after(2.0), [Start(2.2)])], cancel_by_press_after_stop=False, double_press_s=WINDOW)
    play(
        [Step(2.2, "press", rec(0.0, stopped_at=2.0), [])],
        cancel_by_press_after_stop=False,
        double_press_s=WINDOW,
    )


TOGGLE: dict[str, list[Step]] = {
    "press starts, the release changes nothing, the next press stops": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.1, "release", rec(0.0), []),
        Step(4.0, "press", rec(0.0), [Stop(4.0)]),
        Step(4.1, "release", rec(0.0, stopped_at=4.0), []),
    ],
    "a second press within the window drops the recording and undoes": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.05, "release", rec(0.0), []),
        Step(0.2, "press", rec(0.0), [Act.ABORT, Act.UNDO]),
        Step(0.25, "release", IDLE, []),
    ],
    "short presses are no taps in toggle mode": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(0.01, "release", rec(0.0), []),
    ],
    "a long press with nothing said enters pairing": [
        Step(0.0, "press", IDLE, [Start(0.0)]),
        Step(LONG, "release", rec(0.0), [Act.ABORT, Act.PAIR]),
    ],
}


@pytest.mark.parametrize("mode", ["toggle", "auto"])
@pytest.mark.parametrize("steps", TOGGLE.values(), ids=TOGGLE.keys())
def test_toggle_and_auto_modes(steps: list[Step], mode: str) -> None:
    play(steps, mode=mode, double_press_s=WINDOW, long_press_s=LONG)


def taps(*times: float) -> list[Step]:
    """Taps of 50 ms starting at ``times``: each a recording that is dropped."""
    steps: list[Step] = []
    for at in times:
        steps.append(Step(at, "press", IDLE, [Start(at)]))
        steps.append(Step(at + 0.05, "release", rec(at), [Act.ABORT]))
    return steps


def last_intents(steps: list[Step], intents: list[Intent]) -> list[Step]:
    return [*steps[:-1], dataclasses.replace(steps[-1], intents=[*steps[-1].intents, *intents])]


TRIPLE_TAP: dict[str, list[Step]] = {
    "three taps eject, and nothing is undone": [
        *last_intents(taps(0.0, 0.15, 0.3), [Act.EJECT]),
        Step(5.0, "tick", IDLE, []),
    ],
    "two taps undo once the window passes without a third": [
        *taps(0.0, 0.15),
        Step(0.2 + WINDOW - 0.001, "tick", IDLE, []),
        Step(0.2 + WINDOW, "tick", IDLE, [Act.UNDO]),
        Step(5.0, "tick", IDLE, []),
    ],
    "a dictation right after two taps: the undo goes first": [
        *taps(0.0, 0.15),
        Step(0.3, "press", IDLE, [Start(0.3)]),
        Step(0.9, "tick", IDLE, []),
        Step(2.0, "release", rec(0.3), [Act.UNDO, Stop(2.0)]),
        Step(5.0, "tick", IDLE, []),
    ],
}


@pytest.mark.parametrize("steps", TRIPLE_TAP.values(), ids=TRIPLE_TAP.keys())
def test_triple_tap_eject(steps: list[Step]) -> None:
    play(steps, mode="hold", double_press_s=WINDOW, long_press_s=LONG, eject_gesture="triple-tap")


def test_a_third_tap_still_held_when_the_window_ends_is_eject_not_undo() -> None:
    steps = [
        *taps(0.0, 0.15),
        Step(0.5, "press", IDLE, [Start(0.5)]),
        Step(0.2 + WINDOW + 0.1, "tick", IDLE, []),  # held: its release decides
        Step(1.1, "release", rec(0.5), [Act.ABORT, Act.EJECT]),  # still a tap: shorter than min_recording_s
    ]
    play(steps, min_recording_s=0.7, mode="hold", double_press_s=WINDOW, eject_gesture="triple-tap")


def test_the_pending_undo_is_visible_for_the_loops_wake_up() -> None:
    interpreter = play(taps(0.0, 0.15), mode="hold", double_press_s=WINDOW, eject_gesture="triple-tap")
    assert interpreter.undo_due_at == pytest.approx(0.2 + WINDOW)
    interpreter.clock.advance(WINDOW)  # type: ignore[attr-defined]
    assert interpreter.due() == [Act.UNDO]
    assert interpreter.undo_due_at is None


def test_the_cancel_button_ejects_when_there_is_nothing_to_cancel_if_so_configured() -> None:
    steps = [Step(1.0, "cancel", IDLE, [Cancel(CANCEL_BUTTON, eject_if_nothing=True)])]
    play(steps, cancel_pin=22, eject_gesture="cancel-button")


def test_a_reload_changes_the_rules_between_edges() -> None:
    interpreter = play(HOLD["press starts, release stops"][:1], mode="hold")
    interpreter.settings = ButtonSettings(mode="toggle")
    assert interpreter.edge(ButtonEdge("release", 2.0), rec(0.0)) == []


def test_manual_clock_never_goes_back() -> None:
    clock = ManualClock(5.0)
    assert clock.advance(1.5) == 6.5
    with pytest.raises(ValueError, match="does not go back"):
        clock.set(1.0)
