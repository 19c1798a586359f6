"""Kept text's rule (``voxkey.kept``), its state between the typist and the main loop, and the gestures on it.

Times are in milliseconds on a ``ManualClock``: nothing sleeps.
"""

from __future__ import annotations

import pytest

from voxkey.clock import ManualClock
from voxkey.config import ButtonSettings, OutputSettings
from voxkey.errors import ConfigError, KeptTextDropped
from voxkey.gestures import Act, GestureInterpreter, RecordingView, Situation
from voxkey.kept import KeptText, Resume, ResumePolicy
from voxkey.ui import ButtonEdge

WITHIN_MS = 5000
A, B = "usb:0", "usb:1"


@pytest.mark.parametrize(
    ("away_ms", "meant_for", "host_now", "expected"),
    [
        (0, A, A, Resume.TYPE),  # a cable wiggle
        (WITHIN_MS, A, A, Resume.TYPE),  # the bound itself still resumes
        (WITHIN_MS + 1, A, A, Resume.HOLD),  # a laptop that slept: the lock screen has the focus
        (0, A, B, Resume.HOLD),  # re-enumerated / another computer, however fast
        (0, "bluetooth:AA", "bluetooth:BB", Resume.HOLD),  # another Bluetooth host
        (100, "usb:0", "bluetooth:AA", Resume.HOLD),  # transport both: the other link's host
        (100, None, A, Resume.TYPE),  # the text never met a host: time alone decides
        (WITHIN_MS + 1, None, A, Resume.HOLD),
    ],
)
def test_resume_policy(away_ms: int, meant_for: str | None, host_now: str, expected: Resume) -> None:
    assert ResumePolicy(WITHIN_MS / 1000).decide(away_ms / 1000, meant_for, host_now) is expected


def test_resume_within_zero_always_holds_after_an_absence() -> None:
    assert ResumePolicy(0).decide(0.001, A, A) is Resume.HOLD


def kept(clock: ManualClock, held: list[bool] | None = None) -> KeptText:
    return KeptText(ResumePolicy(WITHIN_MS / 1000), clock, None if held is None else held.append)


def test_fresh_text_goes_to_whoever_is_there() -> None:
    clock = ManualClock()
    k = kept(clock)
    assert k.host_ready(A) is Resume.TYPE
    assert k.host_ready(B) is Resume.TYPE  # nothing waited: moved to B, then dictated
    assert k.host == B


@pytest.mark.parametrize(("away_ms", "expected"), [(4999, Resume.TYPE), (5000, Resume.TYPE), (5001, Resume.HOLD)])
def test_absence_is_measured_from_when_the_text_began_to_wait(away_ms: int, expected: Resume) -> None:
    clock = ManualClock(100.0)
    held: list[bool] = []
    k = kept(clock, held)
    k.host_ready(A)
    clock.advance(60)  # idle for a minute with the host gone: that is no kept text
    k.host_gone()
    clock.advance(away_ms / 1000)
    assert k.host_ready(A) is expected
    assert held == ([True] if expected is Resume.HOLD else [])
    assert k.held is (expected is Resume.HOLD)


def test_held_text_goes_after_a_tap_and_only_then() -> None:
    clock = ManualClock()
    held: list[bool] = []
    k = kept(clock, held)
    k.host_ready(A)
    k.host_gone()
    assert k.host_ready(B) is Resume.HOLD
    assert k.host_ready(B) is Resume.HOLD  # asked again and again while waiting: one "held" signal
    assert held == [True]
    assert k.accept()
    assert k.host_ready(B) is Resume.TYPE
    assert held == [True, False] and not k.held and k.host == B
    k.host_gone()  # the next absence is judged afresh: the tap was for that text only
    assert k.host_ready(A) is Resume.HOLD


def test_a_tap_with_nothing_held_does_nothing() -> None:
    k = kept(ManualClock())
    assert not k.accept()
    assert not k.drop("double press")


def test_drop_ends_the_wait_once() -> None:
    clock = ManualClock()
    k = kept(clock)
    k.host_ready(A)
    k.host_gone()
    assert k.host_ready(B) is Resume.HOLD
    assert k.drop("double press")
    with pytest.raises(KeptTextDropped) as raised:
        k.check()
    assert raised.value.by_user
    k.settled()
    k.check()  # dropped once; nothing waits any more
    assert not k.held


def test_stopping_ends_every_wait_but_lets_admitted_text_go() -> None:
    clock = ManualClock()
    k = kept(clock)
    k.host_ready(A)
    k.host_gone()
    k.stop()
    with pytest.raises(KeptTextDropped) as raised:
        k.check()
    assert not raised.value.by_user
    assert k.host_ready(A) is Resume.TYPE  # back within the window: typed, stopping or not
    k.host_gone()
    clock.advance(WITHIN_MS / 1000 + 1)
    with pytest.raises(KeptTextDropped):
        k.host_ready(A)  # would need a tap: stopping does not wait for one


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_resume_within_s_is_validated(value: float) -> None:
    with pytest.raises(ConfigError, match="resume_within_s") as raised:
        OutputSettings(resume_within_s=value)
    assert raised.value.settings == ("resume_within_s",)


HELD = Situation(text_held=True)


def interpreter(clock: ManualClock) -> GestureInterpreter:
    return GestureInterpreter(ButtonSettings(double_press_s=0.4), clock, 0.3)


def test_one_press_on_held_text_types_it_once_the_window_passed() -> None:
    clock = ManualClock(10.0)
    g = interpreter(clock)
    assert g.edge(ButtonEdge("press", 10.0), HELD) == []
    assert g.edge(ButtonEdge("release", 10.05), HELD) == []  # swallowed: no recording, no tap
    clock.set(10.399)
    assert g.due() == []
    clock.set(10.4)
    assert g.due() == [Act.TYPE_KEPT]
    assert g.due() == [] and g.kept_due_at is None


def test_two_presses_on_held_text_drop_it() -> None:
    clock = ManualClock(10.0)
    g = interpreter(clock)
    g.edge(ButtonEdge("press", 10.0), HELD)
    g.edge(ButtonEdge("release", 10.05), HELD)
    clock.set(10.2)
    assert g.edge(ButtonEdge("press", 10.2), HELD) == [Act.DROP_KEPT]
    assert g.edge(ButtonEdge("release", 10.25), HELD) == []
    clock.set(20.0)
    assert g.due() == []  # the first press does not type it afterwards


def test_without_held_text_a_press_starts_a_dictation() -> None:
    g = interpreter(ManualClock(10.0))
    intents = g.edge(ButtonEdge("press", 10.0), Situation())
    assert [type(i).__name__ for i in intents] == ["Start"]


def test_a_press_during_a_recording_is_about_the_recording_even_with_text_held() -> None:
    """Toggle mode: the press that stops a dictation started before the text was held still stops it."""
    g = GestureInterpreter(ButtonSettings(mode="toggle", double_press_s=0.4), ManualClock(10.0), 0.3)
    recording = RecordingView(pressed_at=5.0)
    intents = g.edge(ButtonEdge("press", 10.0), Situation(recording=recording, text_held=True))
    assert [type(i).__name__ for i in intents] == ["Stop"]
    assert g.kept_due_at is None
