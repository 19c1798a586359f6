"""Cancel mid-typing, through the whole daemon: no key stays down, no key is cut in half, nothing stays on screen.

The typist types and erases as jobs, one after the other, on its own thread
(``voxkey.typist``): a cancel queues an erase behind the piece being typed, so
it can never land between a key's press and its release. These tests pin what
a user feels of that. A real dictation (whisper on a speech recording, the
button on MockFactory pins) is typed to a slow ``HoldingHost`` (a boot
keyboard's host: it holds what the last report holds); the cancel comes while
the host holds the 11th character's key, with most of the text still to come.
The product's promise (README: "a press right after release (or the cancel
button) erases the one just spoken, also what of it was already typed"; a
double press erases the last dictation) is that the text field is empty again
and nothing of that dictation is typed after the erase.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from tests.daemon_harness import (
    SPEECH_S,
    US,
    Harness,
    HoldingHost,
    harnesses_fixture,
    make_config,
    room_fixture,
    transcribed_fixture,
    whisper_fixture,
)
from tests.hosts import screen
from voxkey.asr import WhisperEngine
from voxkey.config import Config
from voxkey.hid import RELEASE_ALL
from voxkey.keymap import decode
from voxkey.ui import LightState

engine = whisper_fixture()
room = room_fixture()
transcribed = transcribed_fixture()
harnesses = harnesses_fixture()

CANCEL_PIN = 22
CANCEL_AT = 20
"""Report index (0-based) the cancel comes at: the press of the 11th character, so the host holds a key."""
REPORT_DELAY_S = 0.05
"""A slow host: ~100 reports take ~5 s, so the daemon's loop takes the cancel while the text is still going out."""


def config() -> Config:
    """Everything typed at the release (one piece), a cancel button on ``CANCEL_PIN``."""
    base = make_config("hold")
    return dataclasses.replace(
        base,
        button=dataclasses.replace(base.button, cancel_pin=CANCEL_PIN),
        dictation=dataclasses.replace(base.dictation, type_while_talking=False),
    )


@pytest.mark.parametrize("gesture", ["cancel button", "double press"])
def test_a_cancel_mid_typing_leaves_no_key_down_no_half_key_and_nothing_on_screen(
    engine: WhisperEngine,
    pins: MockFactory,
    room: Path,
    transcribed: Callable[[Path], str],
    harnesses: list[Harness],
    gesture: str,
) -> None:
    held_at_cancel: list[bytes] = []  # what the host held when the gesture was made
    cancel_seen_at: list[int] = []  # the index of the first report sent once the daemon had taken the cancel
    h: Harness | None = None

    def on_report(index: int, report: bytes) -> None:
        """On the typist's thread, right after the host took report ``index``: the 11th character's press."""
        if h is None:  # not yet started: nothing is typed before the harness exists
            return
        if index == CANCEL_AT:
            held_at_cancel.append(host.held())
            if gesture == "cancel button":
                pins.pin(CANCEL_PIN).drive_low()
                pins.pin(CANCEL_PIN).drive_high()
            else:
                h.double_tap()
        # the loop counts a cancel at once; an undo is counted once done, but its light flashes at once
        if not cancel_seen_at and (h.daemon.counters.cancelled > 0 or LightState.UNDO in h.history()):
            cancel_seen_at.append(index)

    host = HoldingHost(delay_s=REPORT_DELAY_S, on_report=on_report)
    h = Harness(config(), engine, pins, room, link=host)
    harnesses.append(h)
    h.speak(SPEECH_S)
    h.wait_for(lambda: bool(cancel_seen_at) and host.backspaces() > 0, 120)
    assert held_at_cancel and held_at_cancel[0] != b"", "the scenario: the gesture comes while the host holds a key"
    h.wait_idle(60)
    time.sleep(0.5)  # nothing more may arrive once the daemon is idle
    reports = list(host.reports)
    expected = transcribed(room)
    typed = decode(reports, US)

    # (a) no stuck key: the host's last report lets go of everything, before and after the daemon stops
    assert host.held() == b"", f"the host still holds {host.held().hex()}"
    # (b) every key is a whole press/release pair, one key at a time: no key cut in half, no chord
    presses, releases = reports[0::2], reports[1::2]
    assert len(presses) == len(releases), "a press without its release"
    assert all(release == RELEASE_ALL for release in releases), "a release report that still holds a key"
    assert all(sum(1 for usage in press[2:] if usage) == 1 for press in presses), "a report with no key or a chord"
    # (c) the promise: what was typed is erased, to the character, and nothing of the dictation follows the erase
    first_backspace = typed.index("\b")
    before, after = typed[:first_backspace], typed[first_backspace:]
    assert expected.startswith(before), f"typed {before!r}, the dictation is {expected!r}"
    assert len(before) > CANCEL_AT // 2, "the characters the host had when the cancel came are among those erased"
    assert after == "\b" * len(before), f"after the erase began the host got {after!r}"
    assert screen(typed) == ""
    # the cancel was taken mid-text: the daemon had counted it before the text was done
    assert cancel_seen_at and CANCEL_AT <= cancel_seen_at[0] < 2 * len(before), (cancel_seen_at, len(before))
    assert h.daemon.counters.errors == 0
    assert h.stop() == 0
    assert host.held() == b""
    assert host.backspaces() == len(before)
